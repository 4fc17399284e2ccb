"""The job: Conveyor's one primitive. Model, statuses and the transition table (pure, no I/O).

Everyone reads this module: backends persist the transitions named here, the worker and the
API speak in these types. ``TRANSITIONS`` is the single source of truth for which verb may
move a job from which status to which; ``check_transition`` is what backends call before
they write (the memory engine literally, the SQL and Lua engines through the equivalent
``WHERE status IN (...)`` guards, which a conformance test keeps in step with this table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from types import FunctionType
from typing import NewType, TypeAlias, TypeVar

from conveyor.errors import InvalidTransition

JSONValue: TypeAlias = "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]"
JSONObject: TypeAlias = dict[str, JSONValue]

JobId = NewType("JobId", str)
"""A UUIDv7 in canonical text form: time-ordered, so sorting by id is sorting by creation."""

WorkerId = NewType("WorkerId", str)

DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 25
DEFAULT_PRIORITY = 0
MIN_PRIORITY = -1000
MAX_PRIORITY = 1000


C = TypeVar("C", bound=type)


class _Factory:
    """The default shown for a field with a ``default_factory`` (as dataclasses shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def slot_init(cls: C) -> C:
    """Give a frozen, slotted dataclass a faster ``__init__`` (apply above ``@dataclass``).

    The ``__init__`` a frozen dataclass generates stores each field with
    ``object.__setattr__(self, name, value)``: a builtins lookup and a lookup of the name on
    the type per field. This one calls each slot's own descriptor, bound once, which is what
    that call ends in: a 23-field ``Job`` is built in 1.3 instead of 1.8 µs, and a bulk enqueue
    or a claim builds one per job (docs/performance.md, "Fourth pass"). Same parameters,
    defaults, ``default_factory`` and ``__post_init__``; instances stay frozen, since only
    ``__setattr__`` (unchanged) is what refuses assignment afterwards."""
    params, body = [], []
    namespace: dict[str, object] = {"_FACTORY": _FACTORY}
    for f in fields(cls):
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is not MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            body.append(f"    if {f.name} is _FACTORY: {f.name} = _factory_{f.name}()")
        else:
            params.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # generated from the class's own fields, as dataclasses does
    init = namespace["__init__"]
    assert isinstance(init, FunctionType)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {f.name: f.type for f in fields(cls)} | {"return": None}
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses assigning a method
    return cls


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting for run_at
    QUEUED = "queued"  # ready to be claimed
    RUNNING = "running"  # claimed; holds a lease
    RETRYING = "retrying"  # failed an attempt; waits for run_at before the next one
    COMPLETED = "completed"
    FAILED = "failed"  # the dead-letter queue
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def is_waiting(self) -> bool:
        """Claimable once ``run_at`` has passed (and the queue is not paused)."""
        return self in WAITING_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
WAITING_STATUSES = frozenset({JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RETRYING})


class Verb(StrEnum):
    """The verbs of a job's life, as used in code, logs, API, CLI and docs."""

    ENQUEUE = "enqueue"
    PROMOTE = "promote"  # scheduled/retrying whose run_at passed -> queued (display only)
    CLAIM = "claim"
    COMPLETE = "complete"
    RETRY = "retry"  # fail with attempts left -> retrying
    FAIL = "fail"  # fail with no attempts left, or discard -> failed
    RELEASE = "release"  # graceful shutdown: back to queued, attempt not charged
    RESCUE = "rescue"  # lease expired: back to queued (attempt stays charged)
    RESCUE_FAIL = "rescue_fail"  # lease expired on the last attempt / too many rescues
    CANCEL = "cancel"  # waiting job -> cancelled at once
    CANCEL_RUNNING = "cancel_running"  # running job whose cancel request was acted on
    REQUEUE = "requeue"  # failed/cancelled -> queued, attempts reset


S = JobStatus
TRANSITIONS: Mapping[Verb, Mapping[JobStatus, JobStatus]] = {
    Verb.ENQUEUE: {},  # creation: to SCHEDULED or QUEUED, from nothing
    Verb.PROMOTE: {S.SCHEDULED: S.QUEUED, S.RETRYING: S.QUEUED},
    Verb.CLAIM: {S.QUEUED: S.RUNNING, S.SCHEDULED: S.RUNNING, S.RETRYING: S.RUNNING},
    Verb.COMPLETE: {S.RUNNING: S.COMPLETED},
    Verb.RETRY: {S.RUNNING: S.RETRYING},
    Verb.FAIL: {S.RUNNING: S.FAILED},
    Verb.RELEASE: {S.RUNNING: S.QUEUED},
    Verb.RESCUE: {S.RUNNING: S.QUEUED},
    Verb.RESCUE_FAIL: {S.RUNNING: S.FAILED},
    Verb.CANCEL: {S.SCHEDULED: S.CANCELLED, S.QUEUED: S.CANCELLED, S.RETRYING: S.CANCELLED},
    Verb.CANCEL_RUNNING: {S.RUNNING: S.CANCELLED},
    Verb.REQUEUE: {S.FAILED: S.QUEUED, S.CANCELLED: S.QUEUED},
}
del S


def next_status(verb: Verb, current: JobStatus) -> JobStatus | None:
    """The status ``verb`` moves a job in ``current`` to, or None when it is not allowed."""
    return TRANSITIONS[verb].get(current)


def check_transition(job_id: str, verb: Verb, current: JobStatus) -> JobStatus:
    """Like ``next_status`` but raises ``InvalidTransition`` when the verb is not allowed."""
    target = next_status(verb, current)
    if target is None:
        raise InvalidTransition(job_id, current.value, verb.value)
    return target


def sources(verb: Verb) -> frozenset[JobStatus]:
    """The statuses from which ``verb`` is allowed (for SQL ``IN`` guards)."""
    return frozenset(TRANSITIONS[verb])


@dataclass(frozen=True, slots=True)
class AttemptError:
    """What went wrong in one attempt. Kept for every attempt, in order."""

    attempt: int
    at: datetime
    type: str  # exception class, qualified ("builtins.ValueError", "conveyor.LeaseExpired")
    message: str
    traceback: str | None = None
    details: JSONObject | None = None  # handler-specific (HTTP status, latency ...)

    def to_json(self) -> JSONObject:
        return {
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSONValue]) -> AttemptError:
        details = data.get("details")
        tb = data.get("traceback")
        return cls(
            attempt=int(data["attempt"]),  # type: ignore[arg-type]
            at=datetime.fromisoformat(str(data["at"])),
            type=str(data["type"]),
            message=str(data["message"]),
            traceback=None if tb is None else str(tb),
            details=details if isinstance(details, dict) else None,
        )


@slot_init
@dataclass(frozen=True, slots=True)
class NewJob:
    """A request to enqueue one job. Validation of kind/payload binding happens above."""

    kind: str
    payload: JSONObject = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY  # higher runs first
    run_at: datetime | None = None  # absolute due time (aware UTC) ...
    delay: timedelta | None = None  # ... or relative to the backend's clock; not both
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: timedelta | None = None  # per-attempt; None = the worker's default
    idempotency_key: str | None = None
    trace: str | None = None  # W3C traceparent of the producer
    id: JobId | None = None  # normally generated; set to make an id known in advance

    def __post_init__(self) -> None:
        if self.run_at is not None and self.delay is not None:
            raise ValueError("give run_at or delay, not both")
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}")
        if not self.kind:
            raise ValueError("kind must not be empty")
        if not self.queue:
            raise ValueError("queue must not be empty")

    def stored(
        self, job_id: JobId, now: datetime, run_at: datetime, payload: JSONObject | None = None
    ) -> Job:
        """The ``Job`` a backend stores for this request at ``now``: ``scheduled`` when
        ``run_at`` is later than ``now``, else ``queued``; nothing attempted yet. ``payload``:
        the engine's own copy (decoded back from what it stored), else this request's."""
        return Job(
            id=job_id,
            queue=self.queue,
            kind=self.kind,
            payload=self.payload if payload is None else payload,
            status=JobStatus.SCHEDULED if run_at > now else JobStatus.QUEUED,
            priority=self.priority,
            run_at=run_at,
            attempts=0,
            max_attempts=self.max_attempts,
            created_at=now,
            updated_at=now,
            timeout=self.timeout,
            idempotency_key=self.idempotency_key,
            trace=self.trace,
        )


@slot_init
@dataclass(frozen=True, slots=True)
class Job:
    """A stored job, as read from a backend. Immutable: a transition yields a new Job."""

    id: JobId
    queue: str
    kind: str
    payload: JSONObject
    status: JobStatus
    priority: int
    run_at: datetime
    attempts: int  # attempts started so far (the current one included while running)
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    timeout: timedelta | None = None
    idempotency_key: str | None = None
    lease_owner: WorkerId | None = None
    lease_expires_at: datetime | None = None
    started_at: datetime | None = None  # start of the latest attempt
    finished_at: datetime | None = None
    result: JSONValue = None
    errors: tuple[AttemptError, ...] = ()
    progress: JSONObject | None = None
    trace: str | None = None
    rescues: int = 0  # times its lease expired: a bound on poison jobs
    cancel_requested: bool = False

    @property
    def attempt(self) -> int:
        """The number of the current (or latest) attempt, starting at 1."""
        return self.attempts

    @property
    def last_error(self) -> AttemptError | None:
        return self.errors[-1] if self.errors else None
