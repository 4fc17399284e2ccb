"""The in-memory engine: the executable reference of the semantics in ``conveyor.backend``.

Used by unit tests, ``conveyor.testing`` and as the model the conformance suite checks every
other engine against. Single process, single event loop: every method does all of its reads
and writes without an ``await`` in between, so each call is atomic with respect to every
other coroutine (the asyncio equivalent of one transaction). Every status change goes
through ``conveyor.jobs.check_transition``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from conveyor.backend import (
    DEFAULT_MAX_RESCUES,
    Capability,
    ClaimedJob,
    ClaimRequest,
    Completion,
    Enqueued,
    FailRequest,
    Lease,
    ListRequest,
    LogLine,
    MigrationStatus,
    Page,
    PurgeRequest,
    QueueSettings,
    QueueStats,
    RenewOutcome,
    RequeueRequest,
    RescueOutcome,
    WithoutHandoff,
)
from conveyor.backends.memory_index import (
    QUEUE_FULL_RETRY_AFTER,
    MemoryRegistry,
    copy_json,
    list_page,
    matches,
    queue_stats,
)
from conveyor.backends.memory_records import MemoryRecords
from conveyor.clock import Clock, SystemClock
from conveyor.errors import JobNotFound, LeaseLost, QueueFull
from conveyor.ids import new_job_id, new_token
from conveyor.jobs import (
    AttemptError,
    Job,
    JobId,
    JobStatus,
    JSONObject,
    NewJob,
    Verb,
    check_transition,
)

LEASE_EXPIRED_TYPE = "conveyor.LeaseExpired"
MIGRATION = MigrationStatus(current=1, latest=1)


class MemoryBackend(WithoutHandoff, MemoryRegistry, MemoryRecords):
    """All state in dicts of immutable ``Job`` values; a transition replaces the value.
    Workers and API tokens live in ``MemoryRegistry``, shared records in ``MemoryRecords``."""

    capabilities: frozenset[Capability] = frozenset({Capability.NOTIFY})
    url: str = "memory://"

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        MemoryRegistry.__init__(self, self._clock)
        MemoryRecords.__init__(self, self._clock)
        self._jobs: dict[JobId, Job] = {}
        self._tokens_by_job: dict[JobId, str] = {}  # lease token of each running job
        self._by_key: dict[str, JobId] = {}  # idempotency key -> job
        self._logs: dict[JobId, list[LogLine]] = {}
        self._queues: dict[str, QueueSettings] = {}
        self._waiters: list[tuple[frozenset[str], asyncio.Future[None]]] = []

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        # Wake every sleeper rather than cancel it: a wake-up is only a hint, and cancelling
        # would look to the caller as if its own task had been cancelled.
        for _, waiter in self._waiters:
            _wake(waiter)
        self._waiters.clear()

    async def migrate(self) -> MigrationStatus:
        return MIGRATION

    async def migration_status(self) -> MigrationStatus:
        return MIGRATION

    async def now(self) -> datetime:
        return self._clock.now()

    async def wait_for_work(self, queues: Sequence[str], timeout: timedelta) -> bool:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (frozenset(queues), future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout.total_seconds())
        except TimeoutError:
            return False
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
        return True

    def _notify(self, queues: set[str]) -> None:
        """Wake every waiter on one of ``queues`` (a job there may have become claimable)."""
        if not queues:
            return
        for wanted, future in tuple(self._waiters):
            if wanted & queues:
                _wake(future)

    # ------------------------------------------------------------------ enqueue

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        now = self._clock.now()
        # Validate the whole batch before writing anything: the batch is one transaction.
        planned: list[Job | JobId] = []  # a Job to insert, or the id an idempotency key holds
        batch_keys: dict[str, JobId] = {}
        added: dict[str, int] = {}
        seen_ids: set[JobId] = set()
        for new in jobs:
            key = new.idempotency_key
            if key is not None and key in self._by_key:
                planned.append(self._by_key[key])
                continue
            if key is not None and key in batch_keys:
                planned.append(batch_keys[key])
                continue
            if new.id is not None and (new.id in self._jobs or new.id in seen_ids):
                planned.append(new.id)  # a known id is idempotent, like a known key
                continue
            job = self._build(new, now)
            planned.append(job)
            seen_ids.add(job.id)
            added[job.queue] = added.get(job.queue, 0) + 1
            if key is not None:
                batch_keys[key] = job.id
        self._check_depth(added)
        out: list[Enqueued] = []
        woken: set[str] = set()
        for item in planned:
            if isinstance(item, Job):
                self._jobs[item.id] = item
                if item.idempotency_key is not None:
                    self._by_key[item.idempotency_key] = item.id
                if item.status is JobStatus.QUEUED:
                    woken.add(item.queue)
                out.append(Enqueued(job=self._view(item), created=True))
            else:
                out.append(Enqueued(job=self._view(self._jobs[item]), created=False))
        self._notify(woken)
        return out

    def _build(self, new: NewJob, now: datetime) -> Job:
        due = new.run_at if new.run_at is not None else now + (new.delay or timedelta(0))
        return new.stored(new.id or new_job_id(), now, max(due, now), copy_json(new.payload))

    def _check_depth(self, added: dict[str, int]) -> None:
        for queue, count in added.items():
            settings = self._queues.get(queue)
            if settings is None or settings.max_depth is None:
                continue
            waiting = sum(
                1 for j in self._jobs.values() if j.queue == queue and j.status.is_waiting
            )
            if waiting + count > settings.max_depth:
                raise QueueFull(queue, settings.max_depth, QUEUE_FULL_RETRY_AFTER)

    # ------------------------------------------------------------------ claim and leases

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        if request.limit <= 0:
            return []
        now = self._clock.now()
        queues = set(request.queues)
        paused = {q for q, s in self._queues.items() if s.paused}
        candidates = (
            j
            for j in self._jobs.values()
            if j.queue in queues
            and j.queue not in paused
            and j.status.is_waiting
            and j.run_at <= now
        )
        chosen = heapq.nsmallest(
            request.limit, candidates, key=lambda j: (-j.priority, j.run_at, j.id)
        )
        out: list[ClaimedJob] = []
        for job in chosen:
            status = check_transition(job.id, Verb.CLAIM, job.status)
            token = new_token()
            claimed = replace(
                job,
                status=status,
                attempts=job.attempts + 1,
                started_at=now,
                updated_at=now,
                lease_owner=request.worker,
                lease_expires_at=now + request.lease_for,
            )
            self._jobs[job.id] = claimed
            self._tokens_by_job[job.id] = token
            lease = Lease(job.id, request.worker, token, claimed.attempts)
            out.append(ClaimedJob(job=self._view(claimed), lease=lease))
        return out

    def _held(self, lease: Lease) -> Job | None:
        """The job if ``lease`` is still current (fencing), else None."""
        job = self._jobs.get(lease.job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return None
        if self._tokens_by_job.get(lease.job_id) != lease.token:
            return None
        return job

    def _end_lease(self, job: Job, verb: Verb, now: datetime, **changes: object) -> Job:
        """Apply ``verb`` to a running job: new status, lease cleared, finished_at if final."""
        status = check_transition(job.id, verb, job.status)
        self._tokens_by_job.pop(job.id, None)
        ended = replace(
            job,
            status=status,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now if status.is_final else None,
            **changes,  # type: ignore[arg-type]
        )
        self._jobs[job.id] = ended
        if status.is_waiting and ended.run_at <= now:
            self._notify({ended.queue})
        return ended

    async def renew(self, leases: Sequence[Lease], lease_for: timedelta) -> RenewOutcome:
        now = self._clock.now()
        renewed: set[JobId] = set()
        lost: set[JobId] = set()
        cancel: set[JobId] = set()
        for lease in leases:
            job = self._held(lease)
            if job is None:
                lost.add(lease.job_id)
                continue
            self._jobs[job.id] = replace(job, lease_expires_at=now + lease_for, updated_at=now)
            renewed.add(job.id)
            if job.cancel_requested:
                cancel.add(job.id)
        return RenewOutcome(frozenset(renewed), frozenset(lost), frozenset(cancel))

    async def complete(self, completions: Sequence[Completion]) -> list[JobId]:
        now = self._clock.now()
        lost: list[JobId] = []
        for completion in completions:
            job = self._held(completion.lease)
            if job is None:
                lost.append(completion.lease.job_id)
                continue
            self._end_lease(job, Verb.COMPLETE, now, result=copy_json(completion.result))
        return lost

    async def complete_and_claim(
        self, completions: Sequence[Completion], request: ClaimRequest
    ) -> tuple[list[JobId], list[ClaimedJob]]:
        lost = await self.complete(completions)  # no await point inside: one atomic step
        return lost, await self.claim(request)

    async def fail(self, request: FailRequest) -> Job:
        now = self._clock.now()
        job = self._held(request.lease)
        if job is None:
            raise LeaseLost(request.lease.job_id)
        attempts = job.attempts if request.charge_attempt else max(0, job.attempts - 1)
        errors = job.errors if request.error is None else (*job.errors, request.error)
        if job.cancel_requested:
            verb, run_at = Verb.CANCEL_RUNNING, job.run_at
        elif request.retry_after is not None:
            verb, run_at = Verb.RETRY, now + request.retry_after
        else:
            verb, run_at = Verb.FAIL, job.run_at
        ended = self._end_lease(job, verb, now, attempts=attempts, errors=errors, run_at=run_at)
        return self._view(ended)

    async def release(self, leases: Sequence[Lease]) -> list[JobId]:
        now = self._clock.now()
        lost: list[JobId] = []
        for lease in leases:
            job = self._held(lease)
            if job is None:
                lost.append(lease.job_id)
                continue
            attempts = max(0, job.attempts - 1)
            if job.cancel_requested:
                self._end_lease(job, Verb.CANCEL_RUNNING, now, attempts=attempts)
            else:
                self._end_lease(job, Verb.RELEASE, now, attempts=attempts, run_at=now)
        return lost

    async def rescue(
        self, limit: int = 1000, max_rescues: int = DEFAULT_MAX_RESCUES
    ) -> RescueOutcome:
        now = self._clock.now()
        expired = sorted(
            (
                j
                for j in self._jobs.values()
                if j.status is JobStatus.RUNNING
                and j.lease_expires_at is not None
                and j.lease_expires_at < now
            ),
            key=lambda j: (j.lease_expires_at, j.id),
        )[: max(0, limit)]
        requeued: list[JobId] = []
        failed: list[JobId] = []
        cancelled: list[JobId] = []
        for job in expired:
            error = AttemptError(
                attempt=job.attempts,
                at=now,
                type=LEASE_EXPIRED_TYPE,
                message=f"lease held by {job.lease_owner} expired at "
                f"{job.lease_expires_at.isoformat() if job.lease_expires_at else '?'}",
            )
            rescues = job.rescues + 1
            changes: dict[str, object] = {"rescues": rescues, "errors": (*job.errors, error)}
            if job.cancel_requested:
                self._end_lease(job, Verb.CANCEL_RUNNING, now, **changes)
                cancelled.append(job.id)
            elif job.attempts >= job.max_attempts or rescues > max_rescues:
                self._end_lease(job, Verb.RESCUE_FAIL, now, **changes)
                failed.append(job.id)
            else:
                self._end_lease(job, Verb.RESCUE, now, run_at=now, **changes)
                requeued.append(job.id)
        return RescueOutcome(tuple(requeued), tuple(failed), tuple(cancelled))

    async def set_progress(self, lease: Lease, progress: JSONObject) -> None:
        job = self._held(lease)
        if job is None:
            raise LeaseLost(lease.job_id)
        now = self._clock.now()
        self._jobs[job.id] = replace(job, progress=copy_json(progress), updated_at=now)

    # ------------------------------------------------------------------ admin verbs

    async def cancel(self, job_id: JobId) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        now = self._clock.now()
        if job.status is JobStatus.RUNNING:
            updated = replace(job, cancel_requested=True, updated_at=now)
        else:
            status = check_transition(job.id, Verb.CANCEL, job.status)
            updated = replace(job, status=status, finished_at=now, updated_at=now)
        self._jobs[job_id] = updated
        return self._view(updated)

    async def requeue(self, request: RequeueRequest) -> list[JobId]:
        now = self._clock.now()
        requeueable = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
        statuses = (request.filter.statuses or requeueable) & requeueable
        chosen = [
            j
            for j in sorted(self._jobs.values(), key=lambda j: j.id)
            if j.status in statuses and matches(j, request.filter)
        ][: max(0, request.limit)]
        out: list[JobId] = []
        woken: set[str] = set()
        for job in chosen:
            status = check_transition(job.id, Verb.REQUEUE, job.status)
            self._jobs[job.id] = replace(
                job,
                status=status,
                attempts=0,
                rescues=0,
                run_at=now,
                updated_at=now,
                finished_at=None,
                cancel_requested=False,
            )
            out.append(job.id)
            woken.add(job.queue)
        self._notify(woken)
        return out

    async def get(self, job_id: JobId) -> Job | None:
        job = self._jobs.get(job_id)
        return None if job is None else self._view(job)

    async def list_jobs(self, request: ListRequest) -> Page:
        page = list_page(self._jobs.values(), request)
        return Page(tuple(self._view(j) for j in page.jobs), page.next_cursor)

    async def purge(self, request: PurgeRequest) -> int:
        now = self._clock.now()
        ages = {
            JobStatus.COMPLETED: request.completed_older_than,
            JobStatus.FAILED: request.failed_older_than,
            JobStatus.CANCELLED: request.cancelled_older_than,
        }
        doomed: list[JobId] = []
        for job in sorted(self._jobs.values(), key=lambda j: j.id):
            if len(doomed) >= request.limit:
                break
            age = ages.get(job.status)
            finished = job.finished_at or job.updated_at
            if age is not None and now - finished > age:
                doomed.append(job.id)
        for job_id in doomed:
            job = self._jobs.pop(job_id)
            self._logs.pop(job_id, None)
            if job.idempotency_key is not None:
                self._by_key.pop(job.idempotency_key, None)
        return len(doomed)

    def _view(self, job: Job) -> Job:
        """A copy whose JSON fields the caller may mutate without touching the store."""
        return replace(
            job,
            payload=copy_json(job.payload),
            result=copy_json(job.result),
            progress=None if job.progress is None else copy_json(job.progress),
        )

    # ------------------------------------------------------------------ queues

    async def stats(self) -> list[QueueStats]:
        now = self._clock.now()
        names = {j.queue for j in self._jobs.values()} | set(self._queues)
        return [
            queue_stats(name, self._jobs.values(), self._queues.get(name), now)
            for name in sorted(names)
        ]

    async def configure_queue(self, settings: QueueSettings) -> QueueSettings:
        was_paused = self._queues.get(settings.queue, QueueSettings(settings.queue)).paused
        self._queues[settings.queue] = settings
        if was_paused and not settings.paused:
            self._notify({settings.queue})
        return settings

    async def queue_settings(self, queue: str) -> QueueSettings:
        return self._queues.get(queue, QueueSettings(queue=queue))

    # ------------------------------------------------------------------ logs

    async def append_log(self, job_id: JobId, lines: Sequence[str]) -> None:
        if job_id not in self._jobs:
            raise JobNotFound(job_id)
        now = self._clock.now()
        log = self._logs.setdefault(job_id, [])
        for line in lines:
            log.append(LogLine(seq=len(log) + 1, at=now, line=line))

    async def read_log(self, job_id: JobId, after: int = 0, limit: int = 1000) -> list[LogLine]:
        log = self._logs.get(job_id, [])
        # seq n sits at index n - 1, so lines after ``after`` start at index ``after``.
        return log[max(0, after) : max(0, after) + max(0, limit)]


def _wake(future: asyncio.Future[None]) -> None:
    """Resolve a waiter's future on its own loop: the sync app API enqueues from a portal
    thread while a worker may wait on another loop, and futures are not thread-safe."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    loop = future.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        resolve()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(resolve)
