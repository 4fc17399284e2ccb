"""The backend contract: one async protocol that every storage engine implements.

Called by the worker (claim, renew, complete, fail, release, rescue, wait_for_work), the API
and the Python app (enqueue, get, list, cancel, requeue, stats ...). Engines live in
``conveyor.backends.<engine>`` and are opened by URL through ``conveyor.backends.open_backend``.
Every engine passes the conformance suite in ``tests/backends/``; that suite, not any one
engine, defines the semantics written down here.

Rules every engine keeps (see docs/architecture.md for why):

* **One clock.** Every due time, lease expiry, age and timestamp is computed from the
  backend's clock: ``now()`` in PostgreSQL, ``TIME`` in Redis, the process clock for SQLite
  and memory (one machine). A ``Clock`` passed at construction overrides it (tests use a
  ``FrozenClock``). Callers pass durations (``timedelta``), never absolute "now"-based times.
* **Fencing.** Every write that ends or extends an attempt names its ``Lease``; it is applied
  only while that lease is current (same job, status ``running``, same token). Otherwise it
  is refused: single-job verbs raise ``LeaseLost``, batch verbs report the lost ids.
* **Ordering.** Claims take, among claimable jobs of the asked queues, the highest
  ``priority`` first, then the earliest ``run_at``, then the smallest id (FIFO).
  A job is claimable when its status is scheduled, queued or retrying, its ``run_at`` has
  passed, and its queue is not paused.
* **Atomicity.** Each call is all-or-nothing; a batch enqueue is one transaction.
* **Translation.** Driver exceptions never escape: they become ``conveyor.errors`` types,
  ``BackendUnavailable`` for connection trouble, chained with ``from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

from conveyor.jobs import (
    AttemptError,
    Job,
    JobId,
    JobStatus,
    JSONObject,
    JSONValue,
    NewJob,
    WorkerId,
    slot_init,
)

DEFAULT_LEASE = timedelta(seconds=30)
DEFAULT_MAX_RESCUES = 3
LIST_LIMIT_MAX = 1000


class Capability(StrEnum):
    """What an engine can do beyond the common contract; callers check, never isinstance."""

    NOTIFY = "notify"  # wait_for_work returns early on enqueue (LISTEN/NOTIFY, pub/sub ...)
    TRANSACTIONAL_ENQUEUE = "transactional_enqueue"  # enqueue inside a caller's transaction
    MULTI_PROCESS = "multi_process"  # several processes may share the store
    MULTI_HOST = "multi_host"  # several machines may share the store
    HANDOFF = "handoff"  # a standing claim gets the next ready job at once (wait_for_handoff)


# ---------------------------------------------------------------------------- requests


@slot_init
@dataclass(frozen=True, slots=True)
class Enqueued:
    """One enqueue's outcome: the stored job, and whether this call created it (False when an
    idempotency key matched an existing job, which is returned unchanged)."""

    job: Job
    created: bool


@slot_init
@dataclass(frozen=True, slots=True)
class Lease:
    """The right to run one attempt of one job. ``token`` is fresh for every claim."""

    job_id: JobId
    owner: WorkerId
    token: str
    attempt: int


@slot_init
@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A claimed job (status running, attempts already incremented) and its lease."""

    job: Job
    lease: Lease

    @property
    def token(self) -> str:
        return self.lease.token


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """``standby``: engines with ``Capability.HANDOFF`` register a standing claim for one
    job under this fresh token when fewer than ``limit`` jobs are claimed, alive for
    ``standby_for``; the caller must then call ``wait_for_handoff(standby, ...)``, which
    also withdraws it. Other engines ignore both fields."""

    worker: WorkerId
    queues: Sequence[str]  # non-empty
    limit: int  # at most this many jobs; never more than the worker's free slots
    lease_for: timedelta = DEFAULT_LEASE
    standby: str | None = None
    standby_for: timedelta = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class RenewOutcome:
    """``renewed``: leases extended. ``lost``: not current any more; the worker must stop those
    jobs and not write their outcome. ``cancel_requested``: renewed, but someone asked to
    cancel the job; the worker should cancel its handler."""

    renewed: frozenset[JobId] = frozenset()
    lost: frozenset[JobId] = frozenset()
    cancel_requested: frozenset[JobId] = frozenset()


@slot_init
@dataclass(frozen=True, slots=True)
class Completion:
    lease: Lease
    result: JSONValue = None


@dataclass(frozen=True, slots=True)
class FailRequest:
    """End an attempt that did not succeed.

    * ``retry_after`` set: the job goes to ``retrying`` with ``run_at = now + retry_after``.
      The caller (the worker's retry policy) decides; the backend does not second-guess
      attempts. ``retry_after=None``: the job goes to ``failed`` (the dead-letter queue).
    * ``charge_attempt=False``: this attempt does not count (``attempts`` goes back down by
      one), e.g. a delivery deferred by an open circuit breaker. ``error`` may then be None.
    * If the job has ``cancel_requested`` set, it goes to ``cancelled`` whatever else is asked.

    ``error`` (when given) is appended to the job's ``errors``; ``finished_at`` is set on any
    final status; the lease is cleared.
    """

    lease: Lease
    error: AttemptError | None
    retry_after: timedelta | None = None
    charge_attempt: bool = True


@dataclass(frozen=True, slots=True)
class RescueOutcome:
    """Jobs whose lease had expired: back to ``queued`` (``requeued``), or to ``failed``
    because that was their last attempt or they were rescued more than ``max_rescues``
    times (``failed``), or to ``cancelled`` because a cancel was requested."""

    requeued: tuple[JobId, ...] = ()
    failed: tuple[JobId, ...] = ()
    cancelled: tuple[JobId, ...] = ()


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters for ``list_jobs`` and bulk ``requeue``. Empty sets mean "any"."""

    statuses: frozenset[JobStatus] = frozenset()
    queues: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    ids: frozenset[JobId] = frozenset()


@dataclass(frozen=True, slots=True)
class ListRequest:
    filter: JobFilter = field(default_factory=JobFilter)
    limit: int = 50  # 1..LIST_LIMIT_MAX
    cursor: str | None = None  # opaque; from the previous page's next_cursor


@dataclass(frozen=True, slots=True)
class Page:
    """Newest first (id descending). ``next_cursor`` is None on the last page."""

    jobs: tuple[Job, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RequeueRequest:
    """Bring ``failed`` or ``cancelled`` jobs back to ``queued``: ``attempts`` reset to 0,
    ``rescues`` to 0, ``run_at`` = now, ``cancel_requested`` and ``finished_at`` cleared,
    ``errors`` kept (history). Jobs in other statuses matching the filter are skipped.
    With a filter that has no statuses, both failed and cancelled are requeued."""

    filter: JobFilter
    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    """Retention: delete final jobs (and their logs) that finished longer ago than the given
    ages. None keeps that status forever."""

    completed_older_than: timedelta | None = timedelta(days=1)
    failed_older_than: timedelta | None = timedelta(days=30)
    cancelled_older_than: timedelta | None = timedelta(days=7)
    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    counts: dict[JobStatus, int]  # every status present, zeros included
    oldest_queued_at: datetime | None  # run_at of the oldest claimable-now job
    completed_last_minute: int
    failed_last_minute: int
    paused: bool
    max_depth: int | None


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Stored per queue. ``max_depth`` bounds waiting jobs (scheduled+queued+retrying);
    past it enqueue raises ``QueueFull``. A paused queue accepts jobs but is not claimed."""

    queue: str
    paused: bool = False
    max_depth: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: WorkerId
    host: str
    pid: int
    queues: tuple[str, ...]
    kinds: tuple[str, ...]  # the kinds it can run (the API's known kinds)
    concurrency: int
    running: int
    started_at: datetime
    last_seen_at: datetime | None = None  # set by the backend on every upsert


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int  # 1, 2, 3 ... per job, in append order
    at: datetime
    line: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as stored: only the SHA-256 of the secret is kept."""

    id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """A small versioned JSON document, for state that built-in handlers share across
    processes (webhook endpoints, circuit breakers). ``version`` starts at 1 and grows by one
    on every write."""

    namespace: str
    key: str
    value: JSONObject
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    current: int
    latest: int

    @property
    def up_to_date(self) -> bool:
        return self.current == self.latest


# ---------------------------------------------------------------------------- protocols


@runtime_checkable
class JobStore(Protocol):
    """The life of a job. The verbs of DESIGN.md, nothing shaped like SQL."""

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Store jobs in one transaction, in order; returns one ``Enqueued`` per input.

        A job with ``run_at``/``delay`` in the future is ``scheduled``, else ``queued`` with
        ``run_at = now``. An ``idempotency_key`` already held by a stored job (any status,
        until retention deletes it) returns that job with ``created=False``, also under
        concurrent enqueue from other processes. Raises ``QueueFull`` (nothing stored) when a
        queue with a ``max_depth`` would exceed it.
        """
        ...

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        """Take up to ``limit`` claimable jobs (see Ordering): status -> running,
        ``attempts += 1``, ``started_at = now``, a fresh lease token, ``lease_owner`` and
        ``lease_expires_at = now + lease_for``. No job is ever handed to two claimers."""
        ...

    async def complete_and_claim(
        self, completions: Sequence[Completion], request: ClaimRequest
    ) -> tuple[list[JobId], list[ClaimedJob]]:
        """``complete(completions)`` then ``claim(request)`` in one round trip and, on the
        SQL engines, one transaction (one commit instead of two): the worker's hot loop hands
        back finished jobs and takes new ones in the same call. Returns the lost ids (as
        ``complete``) and the claimed jobs (as ``claim``). ``request.limit`` may count the
        slots these completions free: their leases end before the new ones begin. With no
        completions it is ``claim``; with ``limit <= 0`` it is ``complete``."""
        ...

    async def renew(self, leases: Sequence[Lease], lease_for: timedelta) -> RenewOutcome:
        """The heartbeat: extend every current lease to ``now + lease_for`` in one call."""
        ...

    async def complete(self, completions: Sequence[Completion]) -> list[JobId]:
        """Mark jobs completed (result stored, ``finished_at`` set, lease cleared) in one
        call. Returns the ids whose lease was lost; those were not changed."""
        ...

    async def fail(self, request: FailRequest) -> Job:
        """End a failed attempt (see ``FailRequest``). Raises ``LeaseLost``."""
        ...

    async def release(self, leases: Sequence[Lease]) -> list[JobId]:
        """Graceful shutdown: jobs back to ``queued`` (run_at = now), the attempt not charged
        (``attempts -= 1``), lease cleared. A job with ``cancel_requested`` goes to
        ``cancelled`` instead. Returns the ids whose lease was lost."""
        ...

    async def rescue(
        self, limit: int = 1000, max_rescues: int = DEFAULT_MAX_RESCUES
    ) -> RescueOutcome:
        """Find running jobs whose lease expired (``lease_expires_at < now``); for each,
        ``rescues += 1`` and an ``AttemptError`` of type ``conveyor.LeaseExpired`` is
        appended; then: cancel requested -> cancelled; ``attempts >= max_attempts`` or
        ``rescues > max_rescues`` -> failed; else -> queued with ``run_at = now``. The
        attempt stays charged. Safe to run concurrently from every worker."""
        ...

    async def cancel(self, job_id: JobId) -> Job:
        """Waiting job -> cancelled at once (``finished_at`` set). Running job -> stays
        running with ``cancel_requested = True`` (its worker learns it on renew). Raises
        ``JobNotFound``, or ``InvalidTransition`` for a job already final."""
        ...

    async def requeue(self, request: RequeueRequest) -> list[JobId]:
        """See ``RequeueRequest``. Returns the ids requeued."""
        ...

    async def get(self, job_id: JobId) -> Job | None: ...

    async def list_jobs(self, request: ListRequest) -> Page: ...

    async def set_progress(self, lease: Lease, progress: JSONObject) -> None:
        """Replace the job's progress object. Raises ``LeaseLost``."""
        ...

    async def purge(self, request: PurgeRequest) -> int:
        """Retention; returns how many jobs were deleted."""
        ...


@runtime_checkable
class QueueAdmin(Protocol):
    async def stats(self) -> list[QueueStats]:
        """One entry per queue that has jobs or settings, sorted by name."""
        ...

    async def configure_queue(self, settings: QueueSettings) -> QueueSettings: ...

    async def queue_settings(self, queue: str) -> QueueSettings:
        """Stored settings, or the defaults for a queue never configured."""
        ...


@runtime_checkable
class JobLogs(Protocol):
    async def append_log(self, job_id: JobId, lines: Sequence[str]) -> None:
        """Append lines to the job's log (any status; the job must exist)."""
        ...

    async def read_log(self, job_id: JobId, after: int = 0, limit: int = 1000) -> list[LogLine]:
        """Lines with ``seq > after``, in order."""
        ...


@runtime_checkable
class WorkerRegistry(Protocol):
    async def upsert_worker(self, info: WorkerInfo) -> None:
        """Register or refresh a worker; the backend stamps ``last_seen_at = now``."""
        ...

    async def list_workers(self, seen_within: timedelta) -> list[WorkerInfo]: ...

    async def remove_worker(self, worker_id: WorkerId) -> None: ...


@runtime_checkable
class TokenStore(Protocol):
    async def create_token(self, record: TokenRecord) -> None: ...

    async def list_tokens(self) -> list[TokenRecord]: ...

    async def find_token(self, secret_hash: str) -> TokenRecord | None:
        """The token with that hash, revoked or not."""
        ...

    async def revoke_token(self, token_id: str) -> bool:
        """True when a live token was revoked."""
        ...


@runtime_checkable
class RecordStore(Protocol):
    """Versioned JSON records by (namespace, key), with compare-and-set writes."""

    async def get_record(self, namespace: str, key: str) -> Record | None: ...

    async def list_records(self, namespace: str) -> list[Record]:
        """Every record of the namespace, sorted by key."""
        ...

    async def put_record(
        self, namespace: str, key: str, value: JSONObject, expect_version: int | None = None
    ) -> Record:
        """Write a record. ``expect_version=None``: unconditional upsert. ``0``: create only if
        absent. ``n``: update only if the stored version is ``n``. Otherwise raise
        ``RecordConflict`` and change nothing."""
        ...

    async def delete_record(self, namespace: str, key: str) -> bool: ...


@runtime_checkable
class Backend(JobStore, QueueAdmin, JobLogs, WorkerRegistry, TokenStore, RecordStore, Protocol):
    """An engine: all the seams above, plus lifecycle and wake-ups."""

    capabilities: frozenset[Capability]
    url: str  # with any password masked

    async def open(self) -> None:
        """Connect, and migrate if the engine was opened with ``migrate=True`` (default).
        Safe when several processes open the same store at once."""
        ...

    async def close(self) -> None: ...

    async def migrate(self) -> MigrationStatus: ...

    async def migration_status(self) -> MigrationStatus: ...

    async def now(self) -> datetime:
        """The backend's clock (aware UTC)."""
        ...

    async def wait_for_work(self, queues: Sequence[str], timeout: timedelta) -> bool:
        """Sleep until a job may be claimable in ``queues`` or ``timeout`` passes. True when
        woken by a notification. Only a hint: callers poll anyway. Engines without NOTIFY
        just sleep (returning False)."""
        ...

    async def wait_for_handoff(
        self, standby: str, queues: Sequence[str], timeout: timedelta
    ) -> list[ClaimedJob]:
        """After a claim that registered the standing claim ``standby`` (``ClaimRequest``):
        wait up to ``timeout`` for the job a write hands to it, then withdraw it. Returns the
        jobs claimed for this caller (at most one), ``[]`` on timeout. ``timeout <= 0`` only
        withdraws it, returning a job handed meanwhile, and makes a wait on the same
        ``standby`` still under way return at once (a stop). Cancelled, it withdraws the claim
        and releases a job handed meanwhile. The claim of a caller that never comes back
        expires after ``standby_for``; a job handed to it before then waits for its lease
        to expire, as a job claimed by a worker that died at once. Engines without HANDOFF
        register nothing: this is ``wait_for_work`` and returns ``[]``."""
        ...


class _Waits(Protocol):
    async def wait_for_work(self, queues: Sequence[str], timeout: timedelta) -> bool: ...


class WithoutHandoff:
    """``wait_for_handoff`` for engines without ``Capability.HANDOFF``: nothing is ever
    registered, so it is ``wait_for_work`` and returns ``[]``."""

    async def wait_for_handoff(
        self: _Waits, standby: str, queues: Sequence[str], timeout: timedelta
    ) -> list[ClaimedJob]:
        if timeout > timedelta(0):
            await self.wait_for_work(queues, timeout)
        return []


async def complete_one(backend: JobStore, lease: Lease, result: JSONValue = None) -> None:
    """Complete one job, raising ``LeaseLost`` when its lease is no longer current."""
    from conveyor.errors import LeaseLost

    lost = await backend.complete([Completion(lease=lease, result=result)])
    if lost:
        raise LeaseLost(lease.job_id)
