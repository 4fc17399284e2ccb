"""``GET /jobs/{id}/events``: Server-Sent Events for one job until it ends.

Events: ``status`` (the whole job JSON, sent first and on every status change), ``progress``
(the progress object, when it changes), ``log`` (one per log line; the SSE ``id`` is the
line's ``seq``, so a reconnecting client sends ``Last-Event-ID`` and gets only newer lines),
and ``end`` (the final job) after which the stream closes. A ``: heartbeat`` comment goes out
when nothing else did for a while, so proxies keep the connection open.

It polls the backend (a short interval): the API and the workers meet only in the backend,
and polling works the same on every engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from conveyor.api.auth import Scope, require
from conveyor.api.jobs import ERRORS, NOT_FOUND, Service
from conveyor.api.schemas import job_json
from conveyor.api.service import JobsService
from conveyor.jobs import Job, JobId

router = APIRouter(tags=["jobs"])


def sse(event: str, data: object, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def job_events(
    svc: JobsService,
    job: Job,
    *,
    after_seq: int,
    poll_interval: float,
    heartbeat_interval: float,
) -> AsyncIterator[bytes]:
    """The event stream for ``job`` (already read once)."""
    job_id: JobId = job.id
    yield sse("status", job_json(job))
    status, progress, seq = job.status, job.progress, after_seq
    last_sent = time.monotonic()
    while True:
        lines = await svc.backend.read_log(job_id, after=seq, limit=500)
        for line in lines:
            seq = line.seq
            yield sse("log", {"seq": line.seq, "at": line.at.isoformat(), "line": line.line}, seq)
        current = await svc.backend.get(job_id)
        if current is None:  # purged by retention while we watched
            yield sse("end", {"id": job_id, "status": "deleted"})
            return
        if current.progress != progress:
            progress = current.progress
            yield sse("progress", {"id": job_id, "progress": progress})
        if current.status != status:
            status = current.status
            yield sse("status", job_json(current))
        if current.status.is_final and len(lines) < 500:
            # Drain log lines written just before the final status, then stop.
            for line in await svc.backend.read_log(job_id, after=seq, limit=10_000):
                seq = line.seq
                payload = {"seq": line.seq, "at": line.at.isoformat(), "line": line.line}
                yield sse("log", payload, seq)
            yield sse("end", job_json(current))
            return
        if lines:
            last_sent = time.monotonic()
            continue  # more may be waiting: read again at once
        if time.monotonic() - last_sent >= heartbeat_interval:
            yield b": heartbeat\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(poll_interval)


@router.get(
    "/jobs/{job_id}/events",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "An SSE stream"},
        **ERRORS,
        **NOT_FOUND,
    },
    response_class=StreamingResponse,
    dependencies=[Depends(require(Scope.JOBS_READ))],
)
async def stream_job(
    job_id: str,
    request: Request,
    svc: Service,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """Status changes, progress and log lines of one job, until it ends."""
    job = await svc.get(job_id)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    settings = request.app.state.stream_settings
    return StreamingResponse(
        job_events(
            svc,
            job,
            after_seq=after,
            poll_interval=settings.poll_interval,
            heartbeat_interval=settings.heartbeat_interval,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
