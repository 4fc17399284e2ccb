"""Conversions between PostgreSQL rows and Conveyor's types, for the PostgreSQL engine's
modules. Rows come as dicts (psycopg's ``dict_row``); timestamps are normalised to
``datetime.UTC`` whatever the session time zone; JSON goes out as text (orjson)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

import orjson

from conveyor.backend import QueueSettings, TokenRecord, WorkerInfo
from conveyor.errors import BackendError
from conveyor.jobs import AttemptError, Job, JobId, JobStatus, JSONObject, JSONValue, WorkerId

Row = Mapping[str, object]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def dumps(value: JSONValue) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ValueError(f"not JSON-serialisable: {exc}") from exc


def parse_id(job_id: str) -> uuid.UUID | None:
    """The uuid of a job id, or None for text that cannot be one (so it matches nothing)."""
    try:
        return uuid.UUID(job_id)
    except (ValueError, TypeError, AttributeError):
        return None


def parse_ids(job_ids: Iterable[str]) -> list[uuid.UUID]:
    return [u for u in (parse_id(i) for i in job_ids) if u is not None]


def utc(value: object) -> datetime:
    return cast(datetime, value).astimezone(UTC)


def utc_or_none(value: object) -> datetime | None:
    return None if value is None else utc(value)


def _json(value: object) -> JSONValue:
    # psycopg decodes jsonb already (orjson on the pool's connections, json elsewhere).
    return cast(JSONValue, value)


def _errors(value: object) -> tuple[AttemptError, ...]:
    items = _json(value)
    if not isinstance(items, list):
        return ()
    out = []
    for item in items:
        if isinstance(item, dict):
            error = AttemptError.from_json(item)
            out.append(replace(error, at=error.at.astimezone(UTC)))
    return tuple(out)


def job_from_row(row: Row) -> Job:
    payload = _json(row["payload"])
    progress = _json(row["progress"])
    owner = row["lease_owner"]
    return Job(
        id=JobId(str(row["id"])),
        queue=cast(str, row["queue"]),
        kind=cast(str, row["kind"]),
        payload=payload if isinstance(payload, dict) else {},
        status=JobStatus(cast(str, row["status"])),
        priority=cast(int, row["priority"]),
        run_at=utc(row["run_at"]),
        attempts=cast(int, row["attempts"]),
        max_attempts=cast(int, row["max_attempts"]),
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        timeout=cast(timedelta | None, row["timeout"]),
        idempotency_key=cast(str | None, row["idempotency_key"]),
        lease_owner=None if owner is None else WorkerId(cast(str, owner)),
        lease_expires_at=utc_or_none(row["lease_expires_at"]),
        started_at=utc_or_none(row["started_at"]),
        finished_at=utc_or_none(row["finished_at"]),
        result=_json(row["result"]),
        errors=_errors(row["errors"]),
        progress=progress if isinstance(progress, dict) else None,
        trace=cast(str | None, row["trace"]),
        rescues=cast(int, row["rescues"]),
        cancel_requested=cast(bool, row["cancel_requested"]),
    )


# conveyor_job_json's order (migrations 4 and 5); the times and the timeout in microseconds.
_HANDOFF_COLUMNS = (
    "id", "queue", "kind", "payload", "status", "priority", "run_at", "attempts",
    "max_attempts", "timeout", "idempotency_key", "lease_owner", "lease_expires_at",
    "started_at", "finished_at", "result", "errors", "progress", "trace", "rescues",
    "cancel_requested", "created_at", "updated_at",
)  # fmt: skip
_HANDOFF_TIMES = (
    "run_at", "lease_expires_at", "started_at", "finished_at", "created_at", "updated_at",
)  # fmt: skip


def job_from_handoff(text: str) -> Job:
    """A job as a handoff's NOTIFY carries it (``conveyor_job_json``, migrations 4 and 5)."""
    try:
        row = dict(zip(_HANDOFF_COLUMNS, orjson.loads(text), strict=True))
    except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise BackendError(f"unexpected handoff notification: {text[:200]!r}") from exc
    for name in _HANDOFF_TIMES:
        if row[name] is not None:
            row[name] = EPOCH + timedelta(microseconds=cast(int, row[name]))
    if row["timeout"] is not None:
        row["timeout"] = timedelta(microseconds=cast(int, row["timeout"]))
    return job_from_row(row)


def error_json(error: AttemptError | None) -> str | None:
    if error is None:
        return None
    data: JSONObject = error.to_json()
    data["at"] = error.at.astimezone(UTC).isoformat()
    return dumps(data)


def queue_settings_from_row(row: Row) -> QueueSettings:
    return QueueSettings(
        queue=cast(str, row["name"]),
        paused=cast(bool, row["paused"]),
        max_depth=cast(int | None, row["max_depth"]),
    )


def worker_from_row(row: Row) -> WorkerInfo:
    return WorkerInfo(
        id=WorkerId(cast(str, row["id"])),
        host=cast(str, row["host"]),
        pid=cast(int, row["pid"]),
        queues=tuple(cast(list[str], row["queues"])),
        kinds=tuple(cast(list[str], row["kinds"])),
        concurrency=cast(int, row["concurrency"]),
        running=cast(int, row["running"]),
        started_at=utc(row["started_at"]),
        last_seen_at=utc_or_none(row["last_seen_at"]),
    )


def token_from_row(row: Row) -> TokenRecord:
    return TokenRecord(
        id=cast(str, row["id"]),
        name=cast(str, row["name"]),
        scopes=tuple(cast(list[str], row["scopes"])),
        secret_hash=cast(str, row["secret_hash"]),
        created_at=utc(row["created_at"]),
        revoked_at=utc_or_none(row["revoked_at"]),
    )
