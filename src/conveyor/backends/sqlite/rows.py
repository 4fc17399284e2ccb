"""Conversions between SQLite rows and Conveyor's types: integer microseconds <-> aware UTC
datetimes, JSON text <-> Python values, a ``conveyor_jobs`` row <-> ``Job``.

Called by every statement-running module of the SQLite engine. The column order of
``job_from_row`` is ``sql.JOB_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from conveyor.backend import TokenRecord, WorkerInfo
from conveyor.clock import to_micros
from conveyor.errors import InvalidPayload
from conveyor.jobs import AttemptError, Job, JobId, JobStatus, JSONObject, JSONValue, WorkerId

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Row = Sequence[Any]  # what sqlite3 hands back; typed at this boundary only


@lru_cache(maxsize=4096)
def from_micros(micros: int) -> datetime:
    """Exact inverse of ``clock.to_micros`` (no float on the way). Cached: the jobs of one
    claim share their lease times, those of one enqueue batch their creation time."""
    return _EPOCH + timedelta(microseconds=micros)


def opt_from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def micros_of(duration: timedelta) -> int:
    return (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds


def opt_micros(at: datetime | None) -> int | None:
    return None if at is None else to_micros(at)


def dump_json(value: JSONValue) -> str:
    """JSON text; raises ``InvalidPayload`` (nothing is written) for a value that is not
    JSON (a set, a non-string key, an int past 64 bits ...), like every other engine."""
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise InvalidPayload(f"not JSON-serialisable: {exc}") from exc


def opt_dump_json(value: JSONValue) -> str | None:
    """None stays SQL NULL (a JSON ``null`` result reads back as None either way)."""
    return None if value is None else dump_json(value)


def load_json(text: str | bytes | None) -> JSONValue:
    if text is None:
        return None
    loaded: JSONValue = orjson.loads(text)
    return loaded


def load_object(text: str | bytes | None) -> JSONObject | None:
    value = load_json(text)
    return value if isinstance(value, dict) else None


def job_from_row(row: Row) -> Job:
    """A ``Job`` from a row selected with ``sql.JOB_COLUMNS`` (extra trailing columns ignored)."""
    (
        job_id,
        queue,
        kind,
        payload,
        status,
        priority,
        run_at,
        attempts,
        max_attempts,
        timeout_us,
        idempotency_key,
        lease_owner,
        lease_expires_at,
        started_at,
        finished_at,
        result,
        errors,
        progress,
        trace,
        rescues,
        cancel_requested,
        created_at,
        updated_at,
    ) = row[:23]
    raw_errors = load_json(errors)
    return Job(
        id=JobId(str(job_id)),
        queue=str(queue),
        kind=str(kind),
        payload=load_object(payload) or {},
        status=JobStatus(status),
        priority=int(priority),
        run_at=from_micros(int(run_at)),
        attempts=int(attempts),
        max_attempts=int(max_attempts),
        created_at=from_micros(int(created_at)),
        updated_at=from_micros(int(updated_at)),
        timeout=None if timeout_us is None else timedelta(microseconds=int(timeout_us)),
        idempotency_key=None if idempotency_key is None else str(idempotency_key),
        lease_owner=None if lease_owner is None else WorkerId(str(lease_owner)),
        lease_expires_at=opt_from_micros(lease_expires_at),
        started_at=opt_from_micros(started_at),
        finished_at=opt_from_micros(finished_at),
        result=load_json(result),
        errors=tuple(
            AttemptError.from_json(entry)
            for entry in (raw_errors if isinstance(raw_errors, list) else [])
            if isinstance(entry, dict)
        ),
        progress=load_object(progress),
        trace=None if trace is None else str(trace),
        rescues=int(rescues),
        cancel_requested=bool(cancel_requested),
    )


def worker_from_row(row: Row) -> WorkerInfo:
    worker_id, host, pid, queues, kinds, concurrency, running, started_at, last_seen = row
    return WorkerInfo(
        id=WorkerId(str(worker_id)),
        host=str(host),
        pid=int(pid),
        queues=tuple(str(q) for q in _list(queues)),
        kinds=tuple(str(k) for k in _list(kinds)),
        concurrency=int(concurrency),
        running=int(running),
        started_at=from_micros(int(started_at)),
        last_seen_at=opt_from_micros(last_seen),
    )


def token_from_row(row: Row) -> TokenRecord:
    token_id, name, scopes, secret_hash, created_at, revoked_at = row
    return TokenRecord(
        id=str(token_id),
        name=str(name),
        scopes=tuple(str(s) for s in _list(scopes)),
        secret_hash=str(secret_hash),
        created_at=from_micros(int(created_at)),
        revoked_at=opt_from_micros(revoked_at),
    )


def _list(text: str | None) -> list[JSONValue]:
    value = load_json(text)
    return value if isinstance(value, list) else []
