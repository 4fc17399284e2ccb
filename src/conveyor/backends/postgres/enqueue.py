"""Enqueue on PostgreSQL: one statement per batch, on the pool's connection
(``PostgresJobStore.enqueue``) or the caller's (``PostgresBackend.enqueue_in``).

A batch without idempotency keys or explicit ids, the common case, goes through
``sql/enqueue_plain.sql`` (``sql/enqueue_one.sql`` for a single job): a plain INSERT that
returns only the time it stored the jobs at; the jobs are built here from the requests
(``NewJob.stored``), since reading a thousand rows back costs more than inserting them. It
takes the batch column-wise (ids, payloads, and the few distinct option sets), which the
server parses far faster than a JSON record per job (docs/performance.md, "Third pass").
A batch with keys or ids (conflicts to resolve), or for a bounded queue (its depth to
check), goes through the ``conveyor_enqueue`` function (migrations/0001_init.sql), which
returns the stored jobs. All fill the same columns by the same rules; the JSON objects sent
leave out keys whose value is null.
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


def _shape(job: NewJob) -> tuple[object, ...]:
    """The options a plain enqueue stores per job, apart from its id and payload."""
    return (job.queue, job.kind, job.priority, job.run_at, job.delay, job.max_attempts,
            job.timeout, job.trace)  # fmt: skip


def _shape_item(shape: tuple[object, ...]) -> dict[str, object]:
    queue, kind, priority, run_at, delay, max_attempts, timeout, trace = shape
    item: dict[str, object] = {
        "queue": queue, "kind": kind, "priority": priority, "max_attempts": max_attempts,
    }  # fmt: skip
    if isinstance(run_at, datetime):
        item["run_at"] = run_at.astimezone(UTC)
    if isinstance(delay, timedelta):
        item["delay_us"] = micros(delay)
    if isinstance(timeout, timedelta):
        item["timeout_us"] = micros(timeout)
    if trace is not None:
        item["trace"] = trace
    return item


def _item(job: NewJob, job_id: str) -> dict[str, object]:
    """One job as ``conveyor_enqueue`` reads it: its options, id, payload and key."""
    item = _shape_item(_shape(job))
    item["id"] = job_id
    item["payload"] = job.payload
    if job.idempotency_key is not None:
        item["idempotency_key"] = job.idempotency_key
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


def _plain_params(jobs: Sequence[NewJob]) -> tuple[list[JobId], bytes, dict[str, object]]:
    """``sql/enqueue_plain.sql``'s column-wise parameters for ``jobs`` (no explicit ids):
    the fresh ids, the payloads as one JSON array, and the parameters."""
    ids = new_job_ids(len(jobs))
    shapes: dict[tuple[object, ...], int] = {}
    shape_of = []
    for job in jobs:
        key = _shape(job)
        index = shapes.get(key)
        if index is None:
            index = shapes[key] = len(shapes) + 1
        shape_of.append(index)
    try:
        payloads = orjson.dumps([job.payload for job in jobs])
        shape_items = orjson.dumps([_shape_item(shape) for shape in shapes])
    except TypeError as exc:
        raise InvalidPayload(f"payload is not JSON-serialisable: {exc}") from exc
    params: dict[str, object] = {
        "ids": "{" + ",".join(ids) + "}",
        "payloads": payloads.decode(),
        "shape_of": "{" + ",".join(map(str, shape_of)) + "}",
        "shapes": shape_items.decode(),
        "queues": sorted({job.queue for job in jobs}),
        "count": len(jobs),
    }
    return ids, payloads, params


def _one_params(job: NewJob) -> tuple[list[JobId], bytes, dict[str, object]]:
    """``sql/enqueue_one.sql``'s parameters for ``job`` (no explicit id), as
    ``_plain_params`` gives them for a batch: ``[id]``, ``[payload]`` as JSON, parameters."""
    [job_id] = new_job_ids(1)
    try:
        payload = orjson.dumps(job.payload)
    except TypeError as exc:
        raise InvalidPayload(f"payload is not JSON-serialisable: {exc}") from exc
    params = _shape_item(_shape(job))
    params.setdefault("run_at", None)
    params.setdefault("delay_us", None)
    params.setdefault("timeout_us", None)
    params.setdefault("trace", None)
    params["id"] = job_id
    params["payload"] = payload.decode()
    return [job_id], b"[" + payload + b"]", params


async def _enqueue_plain(
    cur: AsyncCursor[DictRow], jobs: Sequence[NewJob], db: Database
) -> list[Enqueued] | None:
    """The plain INSERT; None (nothing stored) when one of the batch's queues is bounded."""
    if len(jobs) == 1:
        ids, payloads, params = _one_params(jobs[0])
        query = QUERIES.enqueue_one
    else:
        ids, payloads, params = _plain_params(jobs)
        query = QUERIES.enqueue_plain
    params["now"] = db.now_param()
    await cur.execute(query, params)
    row = await cur.fetchone()
    if row is None or row["bounded"]:
        return None
    now = utc(row["now"])
    # The payloads decoded back from what was sent: copies the caller cannot mutate.
    copies = orjson.loads(payloads)
    stored = NewJob.stored
    return [
        Enqueued(
            job=stored(job, job_id, now, _run_at(job, now), p if isinstance(p, dict) else {}),
            created=True,
        )
        for job, job_id, p in zip(jobs, ids, copies, strict=True)
    ]


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
    plain = all(job.id is None and job.idempotency_key is None for job in jobs)
    try:
        if plain and (done := await _enqueue_plain(cur, jobs, db)) is not None:
            return done
        return await _enqueue_checked(cur, _encode(jobs)[1], db)
    except psycopg.Error as exc:
        if exc.sqlstate == QUEUE_FULL_SQLSTATE:
            queue = exc.diag.message_detail or ""
            max_depth = int(exc.diag.message_hint or 0)
            raise QueueFull(queue, max_depth, QUEUE_FULL_RETRY_AFTER) from exc
        if isinstance(exc, psycopg.DataError):
            raise InvalidPayload(f"PostgreSQL refused the job: {exc}") from exc
        raise
