"""``/dlq``: the dead-letter queue (jobs in ``failed``): list it, requeue by ids or by filter.

Who calls it: operators through curl, the CLI (``conveyor dlq``) and the dashboard.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from conveyor.api.auth import Scope, require
from conveyor.api.jobs import ERRORS, Service, json_response, page_response, single_valued
from conveyor.api.schemas import DlqRequeueIn, FilterName, JobPageOut, RequeuedOut
from conveyor.backend import LIST_LIMIT_MAX, JobFilter
from conveyor.jobs import JobStatus

router = APIRouter(tags=["dead-letter queue"])


@router.get(
    "/dlq",
    response_model=JobPageOut,
    responses=ERRORS,
    dependencies=[Depends(require(Scope.JOBS_READ)), Depends(single_valued("limit", "cursor"))],
)
async def list_dead(
    svc: Service,
    queue: Annotated[tuple[FilterName, ...], Query()] = (),
    kind: Annotated[tuple[FilterName, ...], Query()] = (),
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 50,
) -> Response:
    """Failed jobs, newest first, with every attempt's error."""
    job_filter = JobFilter(
        statuses=frozenset({JobStatus.FAILED}),
        queues=frozenset(queue or ()),
        kinds=frozenset(kind or ()),
    )
    return await page_response(svc, job_filter, limit, cursor)


@router.post(
    "/dlq/requeue",
    response_model=RequeuedOut,
    responses=ERRORS,
    dependencies=[Depends(require(Scope.JOBS_WRITE))],
)
async def requeue_dead(body: DlqRequeueIn, svc: Service) -> Response:
    """Requeue failed jobs by ``ids``, or by ``queue``/``kind``; attempts reset, errors kept.
    Ids that are not in the dead-letter queue are skipped."""
    ids = await svc.requeue_dead(body.ids, body.queue, body.kind, body.limit)
    return json_response({"requeued": list(ids), "count": len(ids)})
