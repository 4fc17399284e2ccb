"""Read-side helpers of the in-memory engine: filters, pages, queue statistics and JSON copies.

Called only by ``conveyor.backends.memory``; pure functions over ``Job`` values, kept apart so
the engine module holds just the write path (the verbs and their transitions).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypeVar, cast

import orjson

from conveyor.backend import LIST_LIMIT_MAX, JobFilter, ListRequest, Page, QueueSettings, QueueStats
from conveyor.errors import InvalidPayload
from conveyor.jobs import Job, JobId, JobStatus, JSONValue

QUEUE_FULL_RETRY_AFTER = timedelta(seconds=1)
"""The ``Retry-After`` hint given with ``QueueFull``: the memory engine cannot predict when
the queue drains, so it asks for a short pause."""

RECENT = timedelta(minutes=1)

J = TypeVar("J", bound=JSONValue)


def copy_json(value: J) -> J:
    """A deep copy through JSON, so the memory engine stores exactly what a SQL or Redis
    engine would give back (tuples become lists, ...). Raises ``InvalidPayload``."""
    if value is None:
        return value
    try:
        return cast(J, orjson.loads(orjson.dumps(value)))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidPayload(f"not JSON-serialisable: {exc}") from exc


def matches(job: Job, flt: JobFilter) -> bool:
    if flt.statuses and job.status not in flt.statuses:
        return False
    if flt.queues and job.queue not in flt.queues:
        return False
    if flt.kinds and job.kind not in flt.kinds:
        return False
    if flt.ids and job.id not in flt.ids:
        return False
    if flt.created_after is not None and job.created_at < flt.created_after:
        return False
    return not (flt.created_before is not None and job.created_at >= flt.created_before)


def list_page(jobs: Iterable[Job], request: ListRequest) -> Page:
    """Newest first (id descending); the cursor is the id of the last job of the page."""
    limit = min(max(1, request.limit), LIST_LIMIT_MAX)
    after = JobId(request.cursor) if request.cursor else None
    selected = sorted(
        (j for j in jobs if matches(j, request.filter) and (after is None or j.id < after)),
        key=lambda j: j.id,
        reverse=True,
    )
    page = tuple(selected[:limit])
    next_cursor = page[-1].id if len(selected) > limit else None
    return Page(jobs=page, next_cursor=next_cursor)


def queue_stats(
    queue: str, jobs: Iterable[Job], settings: QueueSettings | None, now: datetime
) -> QueueStats:
    counts = dict.fromkeys(JobStatus, 0)
    oldest: datetime | None = None
    completed = failed = 0
    horizon = now - RECENT
    for job in jobs:
        if job.queue != queue:
            continue
        counts[job.status] += 1
        if job.status.is_waiting and job.run_at <= now and (oldest is None or job.run_at < oldest):
            oldest = job.run_at
        recent = job.finished_at is not None and job.finished_at >= horizon
        if recent and job.status is JobStatus.COMPLETED:
            completed += 1
        elif recent and job.status is JobStatus.FAILED:
            failed += 1
    settings = settings or QueueSettings(queue=queue)
    return QueueStats(
        queue=queue,
        counts=counts,
        oldest_queued_at=oldest,
        completed_last_minute=completed,
        failed_last_minute=failed,
        paused=settings.paused,
        max_depth=settings.max_depth,
    )
