"""Job hashes to ``Job`` values and back; the Redis engine's only (de)serialisation code.

Field names are the short ones documented in ``lua/prelude.lua``. Times are integer
microseconds since the epoch, converted exactly (no float rounding). ``errors`` is stored as
JSON objects joined by commas so that Lua can append one without decoding JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import orjson

from conveyor.backend import Lease
from conveyor.jobs import AttemptError, Job, JobId, JobStatus, JSONObject, JSONValue, WorkerId

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Fields = Mapping[str, str]


@lru_cache(maxsize=4096)
def at(micros: int | bytes | str) -> datetime:
    """Cached: the jobs of one claim share their lease times, those of one enqueue batch
    their creation time (datetimes are immutable; decoding one costs about 1 us)."""
    return EPOCH + timedelta(microseconds=int(micros))


def micros_of(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def pairs(flat: Sequence[str]) -> dict[str, str]:
    """A flat HGETALL reply from Lua ([k1, v1, k2, v2 ...]) as a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def encode_error(error: AttemptError) -> bytes:
    from conveyor.clock import to_micros

    return orjson.dumps(
        {
            "attempt": error.attempt,
            "at": to_micros(error.at),
            "type": error.type,
            "message": error.message,
            "traceback": error.traceback,
            "details": error.details,
        }
    )


def decode_errors(raw: str | None) -> tuple[AttemptError, ...]:
    if not raw:
        return ()
    items: list[dict[str, JSONValue]] = orjson.loads("[" + raw + "]")
    return tuple(
        AttemptError(
            attempt=int(str(item["attempt"])),
            at=at(str(item["at"])),
            type=str(item["type"]),
            message=str(item["message"]),
            traceback=None if item.get("traceback") is None else str(item["traceback"]),
            details=d if isinstance(d := item.get("details"), dict) else None,
        )
        for item in items
    )


def _opt_at(fields: Fields, name: str) -> datetime | None:
    raw = fields.get(name)
    return None if raw is None else at(raw)


def job_from_fields(job_id: str, fields: Fields) -> Job:
    timeout = fields.get("to")
    progress = fields.get("pg")
    payload: JSONObject = orjson.loads(fields["p"])
    owner = fields.get("lo")
    result = fields.get("r")
    return Job(
        id=JobId(job_id),
        queue=fields["q"],
        kind=fields["k"],
        payload=payload,
        status=JobStatus(fields["s"]),
        priority=int(fields["pr"]),
        run_at=at(fields["ra"]),
        attempts=int(fields["a"]),
        max_attempts=int(fields["ma"]),
        created_at=at(fields["ca"]),
        updated_at=at(fields["ua"]),
        timeout=None if timeout is None else timedelta(microseconds=int(timeout)),
        idempotency_key=fields.get("ik"),
        lease_owner=None if owner is None else WorkerId(owner),
        lease_expires_at=_opt_at(fields, "le"),
        started_at=_opt_at(fields, "sa"),
        finished_at=_opt_at(fields, "fa"),
        result=None if result is None else orjson.loads(result),
        errors=decode_errors(fields.get("e")),
        progress=None if progress is None else orjson.loads(progress),
        trace=fields.get("tr"),
        rescues=int(fields.get("rs", "0")),
        cancel_requested=fields.get("cr") == "1",
    )


def decoded(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    """An HGETALL reply read by redis-py (bytes) as the str mapping ``job_from_fields`` takes."""
    return {k.decode(): v.decode() for k, v in fields.items()}


def lease_of(job: Job, token: str) -> Lease:
    assert job.lease_owner is not None
    return Lease(job_id=job.id, owner=job.lease_owner, token=token, attempt=job.attempts)
