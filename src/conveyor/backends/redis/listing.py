"""Reading many jobs from Redis: cursor listing with filters, bulk requeue by filter, and
retention purge.

Listing walks the per-status id indexes (sorted sets with equal scores, so ordered by id,
which for UUIDv7 is creation order) newest first, merging the statuses asked for, and
filters the job hashes in Python. A page examines a bounded number of ids; when the bound is
reached before the page is full, the page is returned short with a cursor to go on from.
Used by ``RedisBackend`` (mixed in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from conveyor.backend import (
    LIST_LIMIT_MAX,
    JobFilter,
    ListRequest,
    Page,
    PurgeRequest,
    RequeueRequest,
)
from conveyor.backends.redis.codec import decoded, job_from_fields, micros_of
from conveyor.backends.redis.connection import RedisCore, translated
from conveyor.backends.redis.store import as_ids
from conveyor.jobs import Job, JobId, JobStatus

SCAN_BATCH = 200  # ids read per index per round trip
PAGE_SCAN_ROUNDS = 50  # a page examines at most this many batches
REQUEUABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


def matches(job: Job, f: JobFilter) -> bool:
    return (
        (not f.statuses or job.status in f.statuses)
        and (not f.queues or job.queue in f.queues)
        and (not f.kinds or job.kind in f.kinds)
        and (f.created_after is None or job.created_at >= f.created_after)
        and (f.created_before is None or job.created_at < f.created_before)
        and (not f.ids or job.id in f.ids)
    )


class RedisListing:
    _core: RedisCore

    async def _fetch(self, ids: Iterable[str]) -> list[Job]:
        ids = list(ids)
        if not ids:
            return []
        with translated():
            async with self._core.client.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hgetall(self._core.key("job", job_id))
                rows: list[dict[bytes, bytes]] = await pipe.execute()
        return [job_from_fields(i, decoded(row)) for i, row in zip(ids, rows, strict=True) if row]

    async def _ids_below(self, statuses: Iterable[JobStatus], below: str | None) -> list[str]:
        """The newest SCAN_BATCH ids under ``below`` across the status indexes."""
        top = b"+" if below is None else b"(" + below.encode()
        with translated():
            async with self._core.client.pipeline(transaction=False) as pipe:
                for status in statuses:
                    pipe.zrevrangebylex(self._core.key("st", status), top, b"-", 0, SCAN_BATCH)
                replies: list[list[bytes]] = await pipe.execute()
        merged = sorted({i for reply in replies for i in reply}, reverse=True)
        return [i.decode() for i in merged[:SCAN_BATCH]]

    async def _scan(
        self, f: JobFilter, below: str | None, rounds: int | None
    ) -> AsyncIterator[Job | str]:
        """Matching jobs newest first; yields the last examined id (a str) when it stops
        because of the ``rounds`` bound, so a listing can hand out a cursor."""
        if f.ids:
            wanted = sorted((i for i in f.ids if below is None or i < below), reverse=True)
            for job in await self._fetch(wanted):
                if matches(job, f):
                    yield job
            return
        statuses = sorted(f.statuses or frozenset(JobStatus))
        done = 0
        while rounds is None or done < rounds:
            ids = await self._ids_below(statuses, below)
            for job in await self._fetch(ids):
                if matches(job, f):
                    yield job
            if len(ids) < SCAN_BATCH:
                return
            below = ids[-1]
            done += 1
        if below is not None:
            yield below

    async def list_jobs(self, request: ListRequest) -> Page:
        limit = min(max(request.limit, 1), LIST_LIMIT_MAX)
        found: list[Job] = []
        async for item in self._scan(request.filter, request.cursor, PAGE_SCAN_ROUNDS):
            if isinstance(item, str):
                return Page(tuple(found), item)
            found.append(item)
            if len(found) > limit:
                return Page(tuple(found[:limit]), found[limit - 1].id)
        return Page(tuple(found), None)

    async def requeue(self, request: RequeueRequest) -> list[JobId]:
        f = request.filter
        statuses = (f.statuses & REQUEUABLE) if f.statuses else REQUEUABLE
        if not statuses or request.limit <= 0:
            return []
        scan = JobFilter(
            statuses=statuses,
            queues=f.queues,
            kinds=f.kinds,
            created_after=f.created_after,
            created_before=f.created_before,
            ids=f.ids,
        )
        ids: list[str] = []
        async for item in self._scan(scan, None, None):
            if isinstance(item, Job):
                ids.append(item.id)
                if len(ids) >= request.limit:
                    break
        if not ids:
            return []
        # The script checks each status again: a job that moved since the scan is skipped.
        allowed = ",".join(sorted(statuses))
        return as_ids(await self._core.run("requeue", allowed, *ids))

    async def purge(self, request: PurgeRequest) -> int:
        ages = (
            (JobStatus.COMPLETED, request.completed_older_than),
            (JobStatus.FAILED, request.failed_older_than),
            (JobStatus.CANCELLED, request.cancelled_older_than),
        )
        args: list[str | int] = []
        for status, age in ages:
            if age is not None:
                args += [status, micros_of(age)]
        if not args or request.limit <= 0:
            return 0
        deleted = await self._core.run("purge", request.limit, *args)
        return int(deleted) if isinstance(deleted, int) else 0
