"""Enqueue for the SQLite engine: one write transaction per batch, with idempotency keys and
queue depth limits checked inside it.

Called by ``SQLiteBackend.enqueue`` on the writer thread, inside ``BEGIN IMMEDIATE``.
Jobs without an idempotency key or caller-chosen id go in with one ``executemany``; the
others are inserted one by one (``ON CONFLICT DO NOTHING``) so that a conflict can be
answered with the stored job. The unique index holds the key across processes; the write
lock makes "insert, else read the winner" race-free.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson

from conveyor.backend import Enqueued
from conveyor.backends.sqlite.rows import dump_json, from_micros, job_from_row, micros_of
from conveyor.backends.sqlite.sql import query
from conveyor.clock import to_micros
from conveyor.errors import BackendError, QueueFull
from conveyor.ids import new_job_id
from conveyor.jobs import Job, JobId, JobStatus, NewJob

# QueueFull.retry_after: how long a refused producer should wait. Long enough not to hammer
# a full queue, short enough that a queue draining at a few hundred jobs/s is retried soon.
QUEUE_FULL_RETRY_AFTER = timedelta(seconds=2)

_Row = tuple[str, str, str, str, str, int, int, int, int | None, str | None, str | None, int, int]


def enqueue(conn: sqlite3.Connection, jobs: Sequence[NewJob], now: datetime) -> list[Enqueued]:
    now_us = to_micros(now)
    insert = query("enqueue_insert")
    outcomes: list[Enqueued] = []
    plain: list[_Row] = []
    created: Counter[str] = Counter()
    for new in jobs:
        row, job = _prepare(new, now_us)
        if new.idempotency_key is None and new.id is None:
            plain.append(row)
            outcomes.append(Enqueued(job=job, created=True))
            created[job.queue] += 1
        elif conn.execute(insert, row).rowcount == 1:
            outcomes.append(Enqueued(job=job, created=True))
            created[job.queue] += 1
        else:
            outcomes.append(Enqueued(job=_existing(conn, new), created=False))
    if plain:
        conn.executemany(insert, plain)
    if created:
        _check_depths(conn, created)
    return outcomes


def _prepare(new: NewJob, now_us: int) -> tuple[_Row, Job]:
    if new.run_at is not None:
        due = to_micros(new.run_at)
    elif new.delay is not None:
        due = now_us + micros_of(new.delay)
    else:
        due = now_us
    status = JobStatus.SCHEDULED if due > now_us else JobStatus.QUEUED
    run_at = max(due, now_us)
    payload_text = dump_json(new.payload)
    job_id = new.id or new_job_id()
    timeout_us = None if new.timeout is None else micros_of(new.timeout)
    row: _Row = (
        job_id,
        new.queue,
        new.kind,
        payload_text,
        status.value,
        new.priority,
        run_at,
        new.max_attempts,
        timeout_us,
        new.idempotency_key,
        new.trace,
        now_us,
        now_us,
    )
    # The payload is decoded back from what is stored: a copy the caller cannot mutate.
    job = new.stored(
        JobId(job_id), from_micros(now_us), from_micros(run_at), orjson.loads(payload_text)
    )
    return row, job


def _existing(conn: sqlite3.Connection, new: NewJob) -> Job:
    row = None
    if new.idempotency_key is not None:
        row = conn.execute(query("job_by_key"), (new.idempotency_key,)).fetchone()
    if row is None and new.id is not None:
        row = conn.execute(query("job_by_id"), (new.id,)).fetchone()
    if row is None:  # the conflict was on something else: cannot happen with this schema
        raise BackendError(f"enqueue of {new.kind!r} conflicted but no stored job matches")
    return job_from_row(row)


def _check_depths(conn: sqlite3.Connection, created: Counter[str]) -> None:
    """Raise ``QueueFull`` (rolling the whole batch back) when a queue we added to is now
    past its ``max_depth``. Counted after the inserts, so duplicates are not counted."""
    names = orjson.dumps(sorted(created)).decode()
    for queue, max_depth in conn.execute(query("queue_depth_limits"), (names,)).fetchall():
        (depth,) = conn.execute(query("waiting_depth"), (queue,)).fetchone()
        if depth > max_depth:
            raise QueueFull(queue, int(max_depth), QUEUE_FULL_RETRY_AFTER)
