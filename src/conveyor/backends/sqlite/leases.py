"""The running part of a job's life on SQLite: claim, renew, complete, fail, release and
progress, each fenced on the lease token (``WHERE status = 'running' AND lease_token = ?``).

Called by ``SQLiteBackend`` on the writer thread, inside ``BEGIN IMMEDIATE``: every function
here is one transaction, batches included, and only reads the clock once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache

from conveyor.backend import (
    ClaimedJob,
    ClaimRequest,
    Completion,
    FailRequest,
    Lease,
    RenewOutcome,
)
from conveyor.backends.sqlite.rows import dump_json, job_from_row, micros_of, opt_dump_json
from conveyor.backends.sqlite.sql import query
from conveyor.clock import to_micros
from conveyor.errors import LeaseLost
from conveyor.jobs import Job, JobId, JSONObject, WorkerId


@cache
def claim_statement(queue_count: int) -> str:
    """claim.sql with one claim_candidates.sql part per queue (cached per count, so SQLite's
    statement cache keeps the prepared statement)."""
    part = query("claim_candidates")
    candidates = "\nUNION ALL\n".join(
        part.replace(":queue_N", f":queue_{index}") for index in range(queue_count)
    )
    return query("claim").replace("/*candidates*/", candidates)


def claim(conn: sqlite3.Connection, request: ClaimRequest, now: datetime) -> list[ClaimedJob]:
    queues = list(dict.fromkeys(request.queues))  # distinct, in the caller's order
    if not queues or request.limit <= 0:
        return []
    now_us = to_micros(now)
    params: dict[str, object] = {
        "now": now_us,
        "owner": request.worker,
        "expires_at": now_us + micros_of(request.lease_for),
        "limit": request.limit,
    }
    params.update({f"queue_{index}": queue for index, queue in enumerate(queues)})
    rows = conn.execute(claim_statement(len(queues)), params).fetchall()
    claimed = [
        ClaimedJob(
            job=job,
            lease=Lease(
                job_id=job.id,
                owner=WorkerId(request.worker),
                token=row[-1],
                attempt=job.attempts,
            ),
        )
        for row in rows
        for job in (job_from_row(row),)
    ]
    claimed.sort(key=lambda c: (-c.job.priority, c.job.run_at, c.job.id))
    return claimed


def renew(
    conn: sqlite3.Connection, leases: Sequence[Lease], lease_for: timedelta, now: datetime
) -> RenewOutcome:
    expires_at = to_micros(now) + micros_of(lease_for)
    statement = query("renew")
    renewed: set[JobId] = set()
    lost: set[JobId] = set()
    cancel: set[JobId] = set()
    for lease in leases:
        row = conn.execute(statement, (expires_at, lease.job_id, lease.token)).fetchone()
        if row is None:
            lost.add(lease.job_id)
            continue
        renewed.add(lease.job_id)
        if row[0]:
            cancel.add(lease.job_id)
    return RenewOutcome(
        renewed=frozenset(renewed), lost=frozenset(lost), cancel_requested=frozenset(cancel)
    )


def complete(
    conn: sqlite3.Connection, completions: Sequence[Completion], now: datetime
) -> list[JobId]:
    now_us = to_micros(now)
    statement = query("complete")
    lost: list[JobId] = []
    for done in completions:
        params = {
            "result": opt_dump_json(done.result),
            "now": now_us,
            "id": done.lease.job_id,
            "token": done.lease.token,
        }
        if conn.execute(statement, params).rowcount != 1:
            lost.append(done.lease.job_id)
    return lost


def fail(conn: sqlite3.Connection, request: FailRequest, now: datetime) -> Job:
    """The job after the failed attempt; raises ``LeaseLost``."""
    now_us = to_micros(now)
    retry_at = None if request.retry_after is None else now_us + micros_of(request.retry_after)
    params = {
        "now": now_us,
        "retry_at": retry_at,
        "uncharged": 0 if request.charge_attempt else 1,
        "error": None if request.error is None else dump_json(request.error.to_json()),
        "id": request.lease.job_id,
        "token": request.lease.token,
    }
    row = conn.execute(query("fail"), params).fetchone()
    if row is None:
        raise LeaseLost(request.lease.job_id)
    return job_from_row(row)


def release(conn: sqlite3.Connection, leases: Sequence[Lease], now: datetime) -> list[JobId]:
    now_us = to_micros(now)
    statement = query("release")
    lost: list[JobId] = []
    for lease in leases:
        params = {"now": now_us, "id": lease.job_id, "token": lease.token}
        if conn.execute(statement, params).rowcount != 1:
            lost.append(lease.job_id)
    return lost


def set_progress(
    conn: sqlite3.Connection, lease: Lease, progress: JSONObject, now: datetime
) -> None:
    params = (dump_json(progress), to_micros(now), lease.job_id, lease.token)
    if conn.execute(query("set_progress"), params).rowcount != 1:
        raise LeaseLost(lease.job_id)
