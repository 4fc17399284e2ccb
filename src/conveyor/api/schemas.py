"""Pydantic models at the HTTP edge: request bodies (strict, unknown fields refused) and the
documented response shapes. Inside, everything is ``conveyor.jobs`` dataclasses.

Who calls it: the routers (request validation, OpenAPI) and ``conveyor.api.service``
(``job_json``, which serialises a ``Job`` straight to the ``JobOut`` shape without a pydantic
round trip on the hot path; a test keeps the two in step).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    model_validator,
)

from conveyor.backend import LIST_LIMIT_MAX
from conveyor.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    MAX_PRIORITY,
    MIN_PRIORITY,
    Job,
    JobStatus,
    JSONObject,
    JSONValue,
)

NAME_PATTERN = r"^[A-Za-z0-9_.:@/\-]+$"
MAX_DELAY_SECONDS = 10 * 365 * 24 * 3600
MAX_TIMEOUT_SECONDS = 365 * 24 * 3600
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
BATCH_MAX = 1000


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_text(value: object) -> object:
    """Only ISO 8601 text is a time here (pydantic would also read numbers as epochs)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date-time with a UTC offset")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
StrictFloat = Annotated[float, Field(strict=True)]
FilterName = Annotated[str, Field(min_length=1, max_length=200)]  # a queue or kind to filter on


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------ requests


class EnqueueIn(Strict):
    """One job to enqueue. ``payload`` is a JSON object (the task's keyword arguments)."""

    kind: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    payload: dict[str, JsonValue] = Field(default_factory=dict)
    queue: str = Field(default=DEFAULT_QUEUE, min_length=1, max_length=200, pattern=NAME_PATTERN)
    priority: StrictInt = Field(default=DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    run_at: IsoTime | None = None
    delay_seconds: StrictFloat | None = Field(default=None, ge=0, le=MAX_DELAY_SECONDS)
    max_attempts: StrictInt = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=1000)
    timeout_seconds: StrictFloat | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    allow_unknown_kind: StrictBool = False

    @model_validator(mode="after")
    def _one_due_time(self) -> EnqueueIn:
        if self.run_at is not None and self.delay_seconds is not None:
            raise ValueError("give run_at or delay_seconds, not both")
        if self.run_at is not None:
            try:
                at = self.run_at.astimezone(UTC)
            except OverflowError as exc:
                raise ValueError("run_at is out of range") from exc
            if not EARLIEST <= at < LATEST:
                raise ValueError("run_at must be between the years 2000 and 9000")
        return self


class BatchIn(Strict):
    jobs: list[EnqueueIn] = Field(min_length=1, max_length=BATCH_MAX)


class DlqRequeueIn(Strict):
    """Requeue dead-lettered jobs by ``ids``, or by filter (``queue``/``kind``); with neither,
    every failed job (up to ``limit``)."""

    ids: list[str] | None = Field(default=None, max_length=LIST_LIMIT_MAX)
    queue: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=200)
    limit: StrictInt = Field(default=10_000, ge=1, le=100_000)


class QueuePatch(Strict):
    paused: StrictBool | None = None
    max_depth: StrictInt | None = Field(default=None, ge=1, le=1_000_000_000)


# ------------------------------------------------------------------------------ responses


class AttemptErrorOut(BaseModel):
    attempt: int
    at: datetime
    type: str
    message: str
    traceback: str | None
    details: dict[str, JsonValue] | None


class JobOut(BaseModel):
    id: str
    queue: str
    kind: str
    payload: dict[str, JsonValue]
    status: JobStatus
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    timeout_seconds: float | None
    idempotency_key: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    result: JsonValue
    errors: list[AttemptErrorOut]
    progress: dict[str, JsonValue] | None
    trace: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool


class JobPageOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class RequeuedOut(BaseModel):
    requeued: list[str]
    count: int


class QueueOut(BaseModel):
    queue: str
    counts: dict[str, int]
    depth: int  # waiting: scheduled + queued + retrying
    oldest_queued_age_seconds: float | None
    completed_last_minute: int
    failed_last_minute: int
    paused: bool
    max_depth: int | None


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    kinds: list[str]
    concurrency: int
    running: int
    started_at: datetime
    last_seen_at: datetime | None


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    backend: str
    migrations_current: int | None = None
    migrations_latest: int | None = None
    reason: str | None = None


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def job_json(job: Job) -> JSONObject:
    """A ``Job`` as the API's JSON (the ``JobOut`` shape)."""
    result: JSONValue = job.result
    return {
        "id": job.id,
        "queue": job.queue,
        "kind": job.kind,
        "payload": job.payload,
        "status": job.status.value,
        "priority": job.priority,
        "run_at": job.run_at.isoformat(),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "timeout_seconds": None if job.timeout is None else job.timeout.total_seconds(),
        "idempotency_key": job.idempotency_key,
        "lease_owner": job.lease_owner,
        "lease_expires_at": _iso(job.lease_expires_at),
        "result": result,
        "errors": [e.to_json() for e in job.errors],
        "progress": job.progress,
        "trace": job.trace,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "cancel_requested": job.cancel_requested,
    }
