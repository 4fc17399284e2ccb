"""Side parts of the in-memory engine: filters, pages, queue statistics, JSON copies, and
the worker and API-token registries.

Called only by ``conveyor.backends.memory``; kept apart so the engine module holds just the
life of a job (the verbs and their transitions). Same rule as there: no ``await`` between a
read and the write that depends on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar, cast

import orjson

from conveyor.backend import (
    LIST_LIMIT_MAX,
    JobFilter,
    ListRequest,
    Page,
    QueueSettings,
    QueueStats,
    TokenRecord,
    WorkerInfo,
)
from conveyor.clock import Clock
from conveyor.errors import InvalidPayload
from conveyor.jobs import Job, JobId, JobStatus, JSONValue, WorkerId

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


class MemoryRegistry:
    """The ``WorkerRegistry`` and ``TokenStore`` seams over two dicts."""

    def __init__(self, clock: Clock) -> None:
        self._registry_clock = clock
        self._workers: dict[WorkerId, WorkerInfo] = {}
        self._api_tokens: dict[str, TokenRecord] = {}

    async def upsert_worker(self, info: WorkerInfo) -> None:
        self._workers[info.id] = replace(info, last_seen_at=self._registry_clock.now())

    async def list_workers(self, seen_within: timedelta) -> list[WorkerInfo]:
        horizon = self._registry_clock.now() - seen_within
        seen = [
            w
            for w in self._workers.values()
            if w.last_seen_at is not None and w.last_seen_at >= horizon
        ]
        return sorted(seen, key=lambda w: w.id)

    async def remove_worker(self, worker_id: WorkerId) -> None:
        self._workers.pop(worker_id, None)

    async def create_token(self, record: TokenRecord) -> None:
        self._api_tokens[record.id] = record

    async def list_tokens(self) -> list[TokenRecord]:
        return sorted(self._api_tokens.values(), key=lambda t: (t.created_at, t.id))

    async def find_token(self, secret_hash: str) -> TokenRecord | None:
        for record in self._api_tokens.values():
            if record.secret_hash == secret_hash:
                return record
        return None

    async def revoke_token(self, token_id: str) -> bool:
        record = self._api_tokens.get(token_id)
        if record is None or record.revoked_at is not None:
            return False
        self._api_tokens[token_id] = replace(record, revoked_at=self._registry_clock.now())
        return True
