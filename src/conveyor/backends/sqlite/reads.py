"""Read-only queries of the SQLite engine: get, list, stats, queue settings, logs, workers
and tokens.

Called by ``SQLiteBackend`` on a reader thread, inside one read transaction per call (so a
multi-statement answer such as ``stats`` comes from one snapshot).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from conveyor.backend import (
    LIST_LIMIT_MAX,
    ListRequest,
    LogLine,
    Page,
    QueueSettings,
    QueueStats,
    TokenRecord,
    WorkerInfo,
)
from conveyor.backends.sqlite.filters import where
from conveyor.backends.sqlite.rows import (
    from_micros,
    job_from_row,
    micros_of,
    token_from_row,
    worker_from_row,
)
from conveyor.backends.sqlite.sql import query
from conveyor.clock import to_micros
from conveyor.jobs import Job, JobId, JobStatus

_LAST_MINUTE = timedelta(minutes=1)


def get(conn: sqlite3.Connection, job_id: JobId) -> Job | None:
    row = conn.execute(query("job_by_id"), (job_id,)).fetchone()
    return None if row is None else job_from_row(row)


def list_jobs(conn: sqlite3.Connection, request: ListRequest) -> Page:
    limit = max(1, min(request.limit, LIST_LIMIT_MAX))
    clause, params = where(request.filter, before_id=request.cursor)
    params["limit"] = limit + 1  # one more tells whether there is a next page
    statement = query("list_jobs").replace("/*filter*/", clause)
    jobs = [job_from_row(row) for row in conn.execute(statement, params).fetchall()]
    if len(jobs) > limit:
        jobs = jobs[:limit]
        return Page(jobs=tuple(jobs), next_cursor=jobs[-1].id)
    return Page(jobs=tuple(jobs), next_cursor=None)


def stats(conn: sqlite3.Connection, now: datetime) -> list[QueueStats]:
    now_us = to_micros(now)
    counts: dict[str, dict[JobStatus, int]] = {}
    for queue, status, count in conn.execute(query("stats_counts")).fetchall():
        counts.setdefault(queue, dict.fromkeys(JobStatus, 0))[JobStatus(status)] = count
    oldest = dict(conn.execute(query("stats_oldest"), (now_us,)).fetchall())
    finished: dict[tuple[str, str], int] = {
        (queue, status): count
        for queue, status, count in conn.execute(
            query("stats_finished"), (now_us - micros_of(_LAST_MINUTE),)
        ).fetchall()
    }
    settings = {s.queue: s for s in _all_settings(conn)}
    result: list[QueueStats] = []
    for queue in sorted(counts.keys() | settings.keys()):
        stored = settings.get(queue, QueueSettings(queue=queue))
        result.append(
            QueueStats(
                queue=queue,
                counts=counts.get(queue, dict.fromkeys(JobStatus, 0)),
                oldest_queued_at=None if queue not in oldest else from_micros(oldest[queue]),
                completed_last_minute=finished.get((queue, JobStatus.COMPLETED.value), 0),
                failed_last_minute=finished.get((queue, JobStatus.FAILED.value), 0),
                paused=stored.paused,
                max_depth=stored.max_depth,
            )
        )
    return result


def queue_settings(conn: sqlite3.Connection, queue: str) -> QueueSettings:
    row = conn.execute(query("queue_settings_get"), (queue,)).fetchone()
    if row is None:
        return QueueSettings(queue=queue)
    return QueueSettings(queue=row[0], paused=bool(row[1]), max_depth=row[2])


def _all_settings(conn: sqlite3.Connection) -> list[QueueSettings]:
    return [
        QueueSettings(queue=queue, paused=bool(paused), max_depth=max_depth)
        for queue, paused, max_depth in conn.execute(query("queue_settings_all")).fetchall()
    ]


def job_exists(conn: sqlite3.Connection, job_id: JobId) -> bool:
    return conn.execute(query("job_exists"), (job_id,)).fetchone() is not None


def read_log(conn: sqlite3.Connection, job_id: JobId, after: int, limit: int) -> list[LogLine]:
    rows = conn.execute(query("log_read"), (job_id, after, max(limit, 0))).fetchall()
    return [LogLine(seq=seq, at=from_micros(at), line=line) for seq, at, line in rows]


def list_workers(
    conn: sqlite3.Connection, seen_within: timedelta, now: datetime
) -> list[WorkerInfo]:
    since = to_micros(now) - micros_of(seen_within)
    return [worker_from_row(row) for row in conn.execute(query("worker_list"), (since,))]


def list_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    return [token_from_row(row) for row in conn.execute(query("token_list")).fetchall()]


def find_token(conn: sqlite3.Connection, secret_hash: str) -> TokenRecord | None:
    row = conn.execute(query("token_find"), (secret_hash,)).fetchone()
    return None if row is None else token_from_row(row)
