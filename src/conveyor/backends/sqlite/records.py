"""Small writes beside the jobs on SQLite: queue settings, job log lines, the worker
registry and API tokens.

Called by ``SQLiteBackend`` on the writer thread, inside ``BEGIN IMMEDIATE`` (which is what
makes the per-job log ``seq`` safe to compute as ``max(seq) + 1`` across processes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from conveyor.backend import QueueSettings, TokenRecord, WorkerInfo
from conveyor.backends.sqlite.rows import dump_json, opt_micros
from conveyor.backends.sqlite.sql import query
from conveyor.clock import to_micros
from conveyor.errors import BackendError, JobNotFound
from conveyor.jobs import JobId, WorkerId


def configure_queue(conn: sqlite3.Connection, settings: QueueSettings) -> QueueSettings:
    if settings.max_depth is not None and settings.max_depth < 0:
        raise ValueError("max_depth must not be negative")
    conn.execute(
        query("queue_settings_upsert"),
        (settings.queue, int(settings.paused), settings.max_depth),
    )
    return settings


def append_log(
    conn: sqlite3.Connection, job_id: JobId, lines: Sequence[str], now: datetime
) -> None:
    if conn.execute(query("job_exists"), (job_id,)).fetchone() is None:
        raise JobNotFound(job_id)
    (last,) = conn.execute(query("log_next_seq"), (job_id,)).fetchone()
    at = to_micros(now)
    conn.executemany(
        query("log_insert"),
        [(job_id, last + offset, at, line) for offset, line in enumerate(lines, start=1)],
    )


def upsert_worker(conn: sqlite3.Connection, info: WorkerInfo, now: datetime) -> None:
    conn.execute(
        query("worker_upsert"),
        (
            info.id,
            info.host,
            info.pid,
            dump_json(list(info.queues)),
            dump_json(list(info.kinds)),
            info.concurrency,
            info.running,
            to_micros(info.started_at),
            to_micros(now),
        ),
    )


def remove_worker(conn: sqlite3.Connection, worker_id: WorkerId) -> None:
    conn.execute(query("worker_delete"), (worker_id,))


def create_token(conn: sqlite3.Connection, record: TokenRecord) -> None:
    try:
        conn.execute(
            query("token_insert"),
            (
                record.id,
                record.name,
                dump_json(list(record.scopes)),
                record.secret_hash,
                to_micros(record.created_at),
                opt_micros(record.revoked_at),
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise BackendError(f"a token with id {record.id!r} or that secret exists") from exc


def revoke_token(conn: sqlite3.Connection, token_id: str, now: datetime) -> bool:
    return conn.execute(query("token_revoke"), (to_micros(now), token_id)).rowcount == 1
