"""Verbs about a job that are not a worker's own lease: rescue of expired leases, cancel,
requeue and retention purge, on SQLite.

Called by ``SQLiteBackend`` on the writer thread, inside ``BEGIN IMMEDIATE`` (one
transaction per call), so a rescue running in every worker process at once is safe: each
expired lease is rescued by exactly one of them.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import orjson

from conveyor.backend import PurgeRequest, RequeueRequest, RescueOutcome
from conveyor.backends.sqlite.filters import where
from conveyor.backends.sqlite.rows import job_from_row, micros_of
from conveyor.backends.sqlite.sql import query
from conveyor.clock import to_micros
from conveyor.errors import InvalidTransition, JobNotFound
from conveyor.jobs import Job, JobId, JobStatus, Verb, sources


def rescue(conn: sqlite3.Connection, limit: int, max_rescues: int, now: datetime) -> RescueOutcome:
    params = {
        "now": to_micros(now),
        "now_iso": now.isoformat(),
        "max_rescues": max_rescues,
        "limit": limit,
    }
    requeued: list[JobId] = []
    failed: list[JobId] = []
    cancelled: list[JobId] = []
    by_status = {
        JobStatus.QUEUED.value: requeued,
        JobStatus.FAILED.value: failed,
        JobStatus.CANCELLED.value: cancelled,
    }
    for job_id, status in conn.execute(query("rescue"), params).fetchall():
        by_status[status].append(JobId(job_id))
    return RescueOutcome(
        requeued=tuple(sorted(requeued)),
        failed=tuple(sorted(failed)),
        cancelled=tuple(sorted(cancelled)),
    )


def cancel(conn: sqlite3.Connection, job_id: JobId, now: datetime) -> Job:
    params = {"id": job_id, "now": to_micros(now)}
    row = conn.execute(query("cancel_waiting"), params).fetchone()
    if row is None:
        row = conn.execute(query("cancel_running"), params).fetchone()
    if row is not None:
        return job_from_row(row)
    current = conn.execute(query("job_by_id"), (job_id,)).fetchone()
    if current is None:
        raise JobNotFound(job_id)
    raise InvalidTransition(job_id, str(current[4]), Verb.CANCEL.value)


def requeue(conn: sqlite3.Connection, request: RequeueRequest, now: datetime) -> list[JobId]:
    allowed = sources(Verb.REQUEUE)
    statuses = request.filter.statuses & allowed if request.filter.statuses else allowed
    if not statuses or request.limit <= 0:
        return []
    clause, params = where(request.filter)
    params.update(
        now=to_micros(now),
        limit=request.limit,
        requeue_statuses=orjson.dumps(sorted(s.value for s in statuses)).decode(),
    )
    statement = query("requeue").replace("/*filter*/", clause)
    return sorted(JobId(row[0]) for row in conn.execute(statement, params).fetchall())


def purge(conn: sqlite3.Connection, request: PurgeRequest, now: datetime) -> int:
    now_us = to_micros(now)
    ages: list[tuple[JobStatus, timedelta | None]] = [
        (JobStatus.COMPLETED, request.completed_older_than),
        (JobStatus.FAILED, request.failed_older_than),
        (JobStatus.CANCELLED, request.cancelled_older_than),
    ]
    deleted = 0
    for status, age in ages:
        room = request.limit - deleted
        if age is None or room <= 0:
            continue
        cursor = conn.execute(query("purge"), (status.value, now_us - micros_of(age), room))
        deleted += cursor.rowcount
    return deleted
