"""The jobs service: what the API (and the dashboard) may do with jobs, queues and workers,
above the ``Backend`` protocol and below HTTP. No FastAPI types in here.

Who calls it: the routers in ``conveyor.api`` and the dashboard page. It owns the checks that
are not the store's business: payload size, known kinds, job id syntax, and it emits
``JobEnqueued`` events for metrics and logs. Concurrent single-job enqueues share one backend
transaction (group commit, ``conveyor.api.batching``); each still gets its own outcome.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import orjson

from conveyor.api.batching import MAX_GROUP, GroupCommitter
from conveyor.backend import (
    Backend,
    Enqueued,
    JobFilter,
    ListRequest,
    Page,
    QueueSettings,
    QueueStats,
    RequeueRequest,
    WorkerInfo,
)
from conveyor.errors import InvalidTransition, JobNotFound, PayloadTooLarge, UnknownKind
from conveyor.events import EventBus, JobEnqueued
from conveyor.handler import HandlerOptions
from conveyor.jobs import WAITING_STATUSES, Job, JobId, JobStatus, NewJob

KNOWN_KINDS_WINDOW = timedelta(hours=1)  # a worker seen this recently still "knows" its kinds
KNOWN_KINDS_CACHE = 5.0  # seconds between worker-registry reads on the enqueue path


def parse_job_id(raw: str) -> JobId:
    """The canonical form of a job id, or ``JobNotFound`` (no such job can exist)."""
    try:
        return JobId(str(uuid.UUID(raw)))
    except (ValueError, AttributeError, TypeError):
        raise JobNotFound(raw) from None


class JobsService:
    """Jobs, the dead-letter queue, queues and workers, as the API sees them."""

    def __init__(
        self,
        backend: Backend,
        *,
        bus: EventBus | None = None,
        max_payload_bytes: int = 512 * 1024,
        registry_kinds: Iterable[str] = (),
        kind_defaults: Mapping[str, HandlerOptions] | None = None,
        max_group: int = MAX_GROUP,
    ) -> None:
        self.backend = backend
        self.bus = bus or EventBus()
        self.max_payload_bytes = max_payload_bytes
        # Options of locally registered kinds fill what a request leaves out.
        self.kind_defaults: Mapping[str, HandlerOptions] = dict(kind_defaults or {})
        self.local_kinds = frozenset(registry_kinds) | frozenset(self.kind_defaults)
        self._worker_kinds: frozenset[str] = frozenset()
        self._kinds_read_at = float("-inf")
        self._committer = GroupCommitter(self._store, max_group=max_group)

    # ------------------------------------------------------------------ enqueue

    async def known_kinds(self, *, fresh: bool = False) -> frozenset[str]:
        """Kinds registered locally plus those published by live or recent workers."""
        now = time.monotonic()
        if fresh or now - self._kinds_read_at > KNOWN_KINDS_CACHE:
            workers = await self.backend.list_workers(seen_within=KNOWN_KINDS_WINDOW)
            self._worker_kinds = frozenset(k for w in workers for k in w.kinds)
            self._kinds_read_at = now
        return self.local_kinds | self._worker_kinds

    async def _check(self, jobs: Sequence[NewJob], allow_unknown: Sequence[bool]) -> None:
        for job in jobs:
            size = len(orjson.dumps(job.payload))
            if size > self.max_payload_bytes:
                raise PayloadTooLarge(size, self.max_payload_bytes)
        wanted = {job.kind for job, allow in zip(jobs, allow_unknown, strict=True) if not allow}
        if not wanted:
            return
        known = await self.known_kinds()
        if wanted <= known:
            return
        known = await self.known_kinds(fresh=True)  # a worker may have just started
        missing = sorted(wanted - known)
        if missing:
            raise UnknownKind(missing[0], sorted(known))

    async def enqueue(
        self,
        jobs: Sequence[NewJob],
        allow_unknown: Sequence[bool] | None = None,
        *,
        group: bool = True,
    ) -> list[Enqueued]:
        """Check, then store all ``jobs`` in one backend call (one transaction).

        With ``group`` (the default), a single job may share its transaction with concurrent
        single-job enqueues; its outcome and errors are its own either way (see
        ``conveyor.api.batching``). Several jobs are always one transaction of their own.
        """
        await self._check(jobs, allow_unknown or [False] * len(jobs))
        if group and len(jobs) == 1:
            return [await self._committer.submit(jobs[0])]
        return await self._store(jobs)

    async def _store(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """One backend call; a ``JobEnqueued`` event per job it returned."""
        results = await self.backend.enqueue(jobs)
        for entry in results:
            job = entry.job
            self.bus.emit(
                JobEnqueued(job.id, job.queue, job.kind, job.attempts, created=entry.created)
            )
        return results

    # ------------------------------------------------------------------ jobs

    async def get(self, raw_id: str) -> Job:
        job_id = parse_job_id(raw_id)
        job = await self.backend.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def list_jobs(self, job_filter: JobFilter, limit: int, cursor: str | None) -> Page:
        return await self.backend.list_jobs(ListRequest(job_filter, limit=limit, cursor=cursor))

    async def cancel(self, raw_id: str) -> Job:
        return await self.backend.cancel(parse_job_id(raw_id))

    async def requeue_one(self, raw_id: str) -> Job:
        job = await self.get(raw_id)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise InvalidTransition(job.id, job.status.value, "requeue")
        done = await self.backend.requeue(RequeueRequest(JobFilter(ids=frozenset({job.id}))))
        if job.id not in done:  # changed under us (someone else requeued it first)
            latest = await self.get(job.id)
            if latest.status is not JobStatus.QUEUED:
                raise InvalidTransition(job.id, latest.status.value, "requeue")
            return latest
        return await self.get(job.id)

    async def requeue_dead(
        self,
        ids: Sequence[str] | None,
        queue: str | None,
        kind: str | None,
        limit: int,
    ) -> list[JobId]:
        """Requeue failed jobs (the dead-letter queue) by ids and/or filter."""
        job_filter = JobFilter(
            statuses=frozenset({JobStatus.FAILED}),
            queues=frozenset({queue}) if queue else frozenset(),
            kinds=frozenset({kind}) if kind else frozenset(),
        )
        if ids is not None:
            parsed: set[JobId] = set()
            for raw in ids:
                try:
                    parsed.add(parse_job_id(raw))
                except JobNotFound:
                    continue  # an id that cannot exist is simply not requeued
            if not parsed:
                return []
            job_filter = replace(job_filter, ids=frozenset(parsed))
        return await self.backend.requeue(RequeueRequest(job_filter, limit=limit))

    # ------------------------------------------------------------------ queues, workers

    async def queues(self) -> list[QueueStats]:
        return await self.backend.stats()

    async def queue(self, name: str) -> QueueStats:
        for entry in await self.backend.stats():
            if entry.queue == name:
                return entry
        settings = await self.backend.queue_settings(name)
        return QueueStats(
            queue=name,
            counts={status: 0 for status in JobStatus},
            oldest_queued_at=None,
            completed_last_minute=0,
            failed_last_minute=0,
            paused=settings.paused,
            max_depth=settings.max_depth,
        )

    async def configure_queue(
        self, name: str, *, paused: bool | None, max_depth: int | None, set_max_depth: bool
    ) -> QueueStats:
        """Change what was given; ``set_max_depth`` distinguishes "null" from "absent"."""
        current = await self.backend.queue_settings(name)
        updated = QueueSettings(
            queue=name,
            paused=current.paused if paused is None else paused,
            max_depth=max_depth if set_max_depth else current.max_depth,
        )
        await self.backend.configure_queue(updated)
        return await self.queue(name)

    async def workers(self, seen_within: timedelta) -> list[WorkerInfo]:
        return await self.backend.list_workers(seen_within=seen_within)

    async def now(self) -> datetime:
        return await self.backend.now()


def waiting_depth(stats: QueueStats) -> int:
    return sum(stats.counts.get(status, 0) for status in WAITING_STATUSES)
