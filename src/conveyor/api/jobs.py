"""``/jobs``: enqueue (one or a batch), read, list, cancel and requeue jobs.

Who calls it: HTTP clients (curl, the CLI, SDKs). Thin: it translates between HTTP and the
``JobsService``; errors are raised as ``conveyor.errors`` and answered by ``problems``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from conveyor.api.auth import Scope, require
from conveyor.api.problems import ApiProblem, Problem
from conveyor.api.schemas import (
    BatchIn,
    EnqueueIn,
    FilterName,
    IsoTime,
    JobOut,
    JobPageOut,
    job_json,
)
from conveyor.api.service import JobsService
from conveyor.backend import LIST_LIMIT_MAX, JobFilter
from conveyor.errors import BackendError, BackendUnavailable
from conveyor.handler import HandlerOptions
from conveyor.jobs import Job, JobStatus, NewJob

router = APIRouter(tags=["jobs"])

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

Responses = dict[int | str, dict[str, object]]

ERRORS: Responses = {
    400: {"description": "Malformed JSON"},
    401: {"description": "Missing or unknown token"},
    403: {"description": "The token lacks the scope"},
    422: {"description": "Invalid request"},
}
NOT_FOUND: Responses = {404: {"description": "No such job"}}


async def service(request: Request) -> JobsService:
    # async on purpose: FastAPI runs sync dependencies in a thread pool (a hop per request).
    svc: JobsService = request.app.state.service
    return svc


Service = Annotated[JobsService, Depends(service)]


def single_valued(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing a query parameter given more than once where one value is meant
    (the framework would silently keep the last)."""

    async def check(request: Request) -> None:
        for name in names:
            if len(request.query_params.getlist(name)) > 1:
                raise ApiProblem(
                    Problem(
                        422, "validation-error", f"query parameter {name!r} given more than once"
                    )
                )

    return check


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def to_new_job(
    body: EnqueueIn,
    trace: str | None,
    idempotency_key: str | None = None,
    defaults: HandlerOptions | None = None,
) -> NewJob:
    """The ``NewJob`` for a request. Options the request leaves out come from the kind's
    registered defaults (a task's queue and attempts, the webhook kind's queue), when known."""
    given = body.model_fields_set
    queue, priority, max_attempts = body.queue, body.priority, body.max_attempts
    timeout = None if body.timeout_seconds is None else timedelta(seconds=body.timeout_seconds)
    if defaults is not None:
        queue = queue if "queue" in given else defaults.queue
        priority = priority if "priority" in given else defaults.priority
        max_attempts = max_attempts if "max_attempts" in given else defaults.max_attempts
        timeout = timeout if "timeout_seconds" in given else defaults.timeout
    try:
        return NewJob(
            kind=body.kind,
            payload=body.payload,
            queue=queue,
            priority=priority,
            run_at=body.run_at,
            delay=None if body.delay_seconds is None else timedelta(seconds=body.delay_seconds),
            max_attempts=max_attempts,
            timeout=timeout,
            idempotency_key=idempotency_key or body.idempotency_key,
            trace=trace if trace and _TRACEPARENT.match(trace) else None,
        )
    except ValueError as exc:
        raise ApiProblem(Problem(422, "validation-error", str(exc))) from exc


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "The idempotency key was used: the existing job"},
        413: {"description": "Body or payload too large"},
        429: {"description": "The queue is full; see Retry-After"},
        **ERRORS,
    },
    dependencies=[Depends(require(Scope.JOBS_WRITE))],
)
async def enqueue_job(
    body: EnqueueIn,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    traceparent: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    """Enqueue one job. 201 with the job; 200 with the existing job when the idempotency key
    (``Idempotency-Key`` header or ``idempotency_key`` field) was already used."""
    svc: JobsService = request.app.state.service  # not a dependency: the hot path
    if idempotency_key is not None and body.idempotency_key not in (None, idempotency_key):
        raise ApiProblem(
            Problem(422, "validation-error", "Idempotency-Key header and field differ")
        )
    new = to_new_job(body, traceparent, idempotency_key or None, svc.kind_defaults.get(body.kind))
    [entry] = await svc.enqueue([new], [body.allow_unknown_kind])
    return json_response(
        job_json(entry.job),
        201 if entry.created else 200,
        {"Location": f"/jobs/{entry.job.id}"},
    )


@router.post(
    "/jobs/batch",
    status_code=201,
    response_model=list[JobOut],
    responses={413: {"description": "Body or a payload too large"}, 429: {}, **ERRORS},
    dependencies=[Depends(require(Scope.JOBS_WRITE))],
)
async def enqueue_batch(
    body: BatchIn,
    request: Request,
    traceparent: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    """Enqueue many jobs in one transaction: all are stored, or none (e.g. on 429)."""
    svc: JobsService = request.app.state.service  # not a dependency: the hot path
    news = [
        to_new_job(item, traceparent, None, svc.kind_defaults.get(item.kind)) for item in body.jobs
    ]
    # A batch is its own transaction, never merged with other requests (even with one job).
    entries = await svc.enqueue(news, [item.allow_unknown_kind for item in body.jobs], group=False)
    return json_response([job_json(e.job) for e in entries], 201)


@router.get(
    "/jobs",
    response_model=JobPageOut,
    responses=ERRORS,
    dependencies=[
        Depends(require(Scope.JOBS_READ)),
        Depends(single_valued("limit", "cursor", "created_after", "created_before")),
    ],
)
async def list_jobs(
    svc: Service,
    *,
    status: Annotated[tuple[JobStatus, ...], Query()] = (),
    queue: Annotated[tuple[FilterName, ...], Query()] = (),
    kind: Annotated[tuple[FilterName, ...], Query()] = (),
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 50,
) -> Response:
    """Jobs, newest first, with filters; follow ``next_cursor`` for the next page."""
    job_filter = JobFilter(
        statuses=frozenset(status or ()),
        queues=frozenset(queue or ()),
        kinds=frozenset(kind or ()),
        created_after=created_after,
        created_before=created_before,
    )
    return await page_response(svc, job_filter, limit, cursor)


async def page_response(
    svc: JobsService, job_filter: JobFilter, limit: int, cursor: str | None
) -> Response:
    try:
        page = await svc.list_jobs(job_filter, limit, cursor)
    except BackendUnavailable:
        raise
    except (ValueError, BackendError) as exc:
        if cursor is None:
            raise
        # A cursor that this engine cannot decode: the client's mistake, not the server's.
        raise ApiProblem(Problem(422, "invalid-cursor", "invalid cursor")) from exc
    return json_response(
        {"jobs": [job_json(j) for j in page.jobs], "next_cursor": page.next_cursor}
    )


def _job(job: Job) -> Response:
    return json_response(job_json(job))


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={**ERRORS, **NOT_FOUND},
    dependencies=[Depends(require(Scope.JOBS_READ))],
)
async def get_job(job_id: str, svc: Service) -> Response:
    """The job: status, attempts, errors per attempt, result, progress, timestamps."""
    return _job(await svc.get(job_id))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={**ERRORS, **NOT_FOUND, 409: {"description": "The job already finished"}},
    dependencies=[Depends(require(Scope.JOBS_WRITE))],
)
async def cancel_job(job_id: str, svc: Service) -> Response:
    """Cancel: a waiting job at once; a running job is told to stop (``cancel_requested``)."""
    return _job(await svc.cancel(job_id))


@router.post(
    "/jobs/{job_id}/requeue",
    response_model=JobOut,
    responses={**ERRORS, **NOT_FOUND, 409: {"description": "Not failed or cancelled"}},
    dependencies=[Depends(require(Scope.JOBS_WRITE))],
)
async def requeue_job(job_id: str, svc: Service) -> Response:
    """Bring a failed or cancelled job back to the queue (attempts reset, errors kept)."""
    return _job(await svc.requeue_one(job_id))
