"""Enqueue on PostgreSQL: one statement per batch, on the pool's connection
(``PostgresJobStore.enqueue``) or the caller's (``PostgresBackend.enqueue_in``).

Two statements. A batch without idempotency keys or explicit ids, the common case, goes
through ``sql/enqueue_plain.sql``: a plain INSERT that returns only the time it stored the
jobs at; the jobs are built here from the requests (``NewJob.stored``), since reading a
thousand rows back costs more than inserting them. A batch with keys or ids (conflicts to
resolve), or for a bounded queue (its depth to check), goes through the ``conveyor_enqueue``
function (migrations/0001_init.sql), which returns the stored jobs. Both fill the same
columns by the same rules; the JSON objects sent leave out keys whose value is null.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from psycopg import AsyncCursor
from psycopg.rows import DictRow

from conveyor.backend import Enqueued
from conveyor.backends.postgres.database import QUEUE_FULL_SQLSTATE, Database
from conveyor.backends.postgres.queries import QUERIES
from conveyor.backends.postgres.rows import job_from_row, parse_id, utc
from conveyor.errors import InvalidPayload, QueueFull
from conveyor.ids import new_job_ids
from conveyor.jobs import JobId, NewJob

QUEUE_FULL_RETRY_AFTER = timedelta(seconds=1)


def micros(value: timedelta) -> int:
    return value // timedelta(microseconds=1)


def _job_id(job: NewJob, fresh: Iterator[str]) -> str:
    if job.id is None:
        return next(fresh)
    parsed = parse_id(job.id)
    if parsed is None:
        raise InvalidPayload(f"job id {job.id!r} is not a UUID")
    return str(parsed)


def _item(job: NewJob, job_id: str) -> dict[str, object]:
    item: dict[str, object] = {
        "id": job_id,
        "queue": job.queue,
        "kind": job.kind,
        "payload": job.payload,
        "priority": job.priority,
        "max_attempts": job.max_attempts,
    }
    if job.run_at is not None:
        item["run_at"] = job.run_at.astimezone(UTC)
    if job.delay is not None:
        item["delay_us"] = micros(job.delay)
    if job.timeout is not None:
        item["timeout_us"] = micros(job.timeout)
    if job.idempotency_key is not None:
        item["idempotency_key"] = job.idempotency_key
    if job.trace is not None:
        item["trace"] = job.trace
    return item


def _encode(jobs: Sequence[NewJob]) -> tuple[list[str], str]:
    """The batch's job ids (generated where not given) and the batch as one JSON array."""
    fresh = iter(new_job_ids(sum(1 for job in jobs if job.id is None)))
    ids = [_job_id(job, fresh) for job in jobs]
    if len(set(ids)) != len(ids):
        raise InvalidPayload("the same job id appears twice in one enqueue")
    try:
        encoded = orjson.dumps([_item(job, i) for job, i in zip(jobs, ids, strict=True)])
    except TypeError as exc:
        raise InvalidPayload(f"payload is not JSON-serialisable: {exc}") from exc
    return ids, encoded.decode()


def _run_at(job: NewJob, now: datetime) -> datetime:
    """The run_at ``sql/enqueue_plain.sql`` stores for ``job`` at ``now``."""
    if job.run_at is not None:
        due = job.run_at.astimezone(UTC)
    elif job.delay is not None:
        due = now + timedelta(microseconds=micros(job.delay))
    else:
        return now
    return max(due, now)


async def _enqueue_plain(
    cur: AsyncCursor[DictRow], jobs: Sequence[NewJob], ids: list[str], encoded: str, db: Database
) -> list[Enqueued] | None:
    """The plain INSERT; None (nothing stored) when one of the batch's queues is bounded."""
    queues = sorted({job.queue for job in jobs})
    await cur.execute(
        QUERIES.enqueue_plain, {"now": db.now_param(), "queues": queues, "jobs": encoded}
    )
    row = await cur.fetchone()
    if row is None or row["bounded"]:
        return None
    now = utc(row["now"])
    # The payloads decoded back from what was sent: copies the caller cannot mutate.
    items = orjson.loads(encoded)
    out = []
    for job, job_id, item in zip(jobs, ids, items, strict=True):
        payload = item["payload"]
        stored = job.stored(
            JobId(job_id), now, _run_at(job, now), payload if isinstance(payload, dict) else {}
        )
        out.append(Enqueued(job=stored, created=True))
    return out


async def _enqueue_checked(cur: AsyncCursor[DictRow], encoded: str, db: Database) -> list[Enqueued]:
    await cur.execute(QUERIES.enqueue, {"now": db.now_param(), "jobs": encoded})
    rows = await cur.fetchall()
    return [Enqueued(job=job_from_row(row), created=bool(row["created"])) for row in rows]


async def enqueue_rows(
    cur: AsyncCursor[DictRow], jobs: Sequence[NewJob], db: Database
) -> list[Enqueued]:
    """Enqueue ``jobs`` with ``cur`` (the pool's or the caller's connection), in order."""
    if not jobs:
        return []
    ids, encoded = _encode(jobs)
    plain = all(job.id is None and job.idempotency_key is None for job in jobs)
    try:
        if plain and (done := await _enqueue_plain(cur, jobs, ids, encoded, db)) is not None:
            return done
        return await _enqueue_checked(cur, encoded, db)
    except psycopg.Error as exc:
        if exc.sqlstate == QUEUE_FULL_SQLSTATE:
            queue = exc.diag.message_detail or ""
            max_depth = int(exc.diag.message_hint or 0)
            raise QueueFull(queue, max_depth, QUEUE_FULL_RETRY_AFTER) from exc
        if isinstance(exc, psycopg.DataError):
            raise InvalidPayload(f"PostgreSQL refused the job: {exc}") from exc
        raise
