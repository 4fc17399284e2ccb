"""The PostgreSQL engine's smaller seams: ``QueueAdmin`` (stats and queue settings),
``JobLogs``, ``WorkerRegistry`` and ``TokenStore``. Mixed into ``PostgresBackend``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import psycopg

from conveyor.backend import LogLine, QueueSettings, QueueStats, TokenRecord, WorkerInfo
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.queries import QUERIES
from conveyor.backends.postgres.rows import (
    parse_id,
    queue_settings_from_row,
    token_from_row,
    utc,
    utc_or_none,
    worker_from_row,
)
from conveyor.errors import JobNotFound
from conveyor.jobs import JobId, JobStatus, WorkerId


class PostgresAdmin:
    _db: Database

    # ------------------------------------------------------------------ QueueAdmin

    async def stats(self) -> list[QueueStats]:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.stats, {"now": self._db.now_param()})
            rows = await cur.fetchall()
        out = []
        for row in rows:
            raw = cast(dict[str, int], row["counts"])
            out.append(
                QueueStats(
                    queue=cast(str, row["name"]),
                    counts={status: int(raw.get(status.value, 0)) for status in JobStatus},
                    oldest_queued_at=utc_or_none(row["oldest_queued_at"]),
                    completed_last_minute=int(cast(int, row["completed_last_minute"])),
                    failed_last_minute=int(cast(int, row["failed_last_minute"])),
                    paused=bool(row["paused"]),
                    max_depth=cast(int | None, row["max_depth"]),
                )
            )
        # Sorted here, by code point, rather than by the database's collation.
        return sorted(out, key=lambda s: s.queue)

    async def configure_queue(self, settings: QueueSettings) -> QueueSettings:
        params = {
            "now": self._db.now_param(),
            "name": settings.queue,
            "paused": settings.paused,
            "max_depth": settings.max_depth,
        }
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.configure_queue, params)
            row = await cur.fetchone()
        return settings if row is None else queue_settings_from_row(row)

    async def queue_settings(self, queue: str) -> QueueSettings:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.queue_settings, {"name": queue})
            row = await cur.fetchone()
        return QueueSettings(queue=queue) if row is None else queue_settings_from_row(row)

    # ------------------------------------------------------------------ JobLogs

    async def append_log(self, job_id: JobId, lines: Sequence[str]) -> None:
        parsed = parse_id(job_id)
        if parsed is None:
            raise JobNotFound(job_id)
        async with self._db.cursor() as cur:
            if not lines:
                await cur.execute(QUERIES.job_exists, {"id": parsed})
            else:
                params = {"now": self._db.now_param(), "id": parsed, "lines": list(lines)}
                await cur.execute(QUERIES.append_log, params)
            found = await cur.fetchone()
        if found is None:
            raise JobNotFound(job_id)

    async def read_log(self, job_id: JobId, after: int = 0, limit: int = 1000) -> list[LogLine]:
        parsed = parse_id(job_id)
        if parsed is None or limit <= 0:
            return []
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.read_log, {"id": parsed, "after": after, "limit": limit})
            rows = await cur.fetchall()
        return [
            LogLine(seq=cast(int, r["seq"]), at=utc(r["at"]), line=cast(str, r["line"]))
            for r in rows
        ]

    # ------------------------------------------------------------------ WorkerRegistry

    async def upsert_worker(self, info: WorkerInfo) -> None:
        params = {
            "now": self._db.now_param(),
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "queues": list(info.queues),
            "kinds": list(info.kinds),
            "concurrency": info.concurrency,
            "running": info.running,
            "started_at": info.started_at,
        }
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.upsert_worker, params)

    async def list_workers(self, seen_within: timedelta) -> list[WorkerInfo]:
        params = {"now": self._db.now_param(), "within": seen_within}
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.list_workers, params)
            rows = await cur.fetchall()
        return [worker_from_row(row) for row in rows]

    async def remove_worker(self, worker_id: WorkerId) -> None:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.remove_worker, {"id": worker_id})

    # ------------------------------------------------------------------ TokenStore

    async def create_token(self, record: TokenRecord) -> None:
        params = {
            "id": record.id,
            "name": record.name,
            "scopes": list(record.scopes),
            "secret_hash": record.secret_hash,
            "created_at": record.created_at,
            "revoked_at": record.revoked_at,
        }
        async with self._db.cursor() as cur:
            try:
                await cur.execute(QUERIES.create_token, params)
            except psycopg.errors.UniqueViolation as exc:
                raise ValueError(f"a token with id {record.id!r} or that secret exists") from exc

    async def list_tokens(self) -> list[TokenRecord]:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.list_tokens)
            rows = await cur.fetchall()
        return [token_from_row(row) for row in rows]

    async def find_token(self, secret_hash: str) -> TokenRecord | None:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.find_token, {"secret_hash": secret_hash})
            row = await cur.fetchone()
        return None if row is None else token_from_row(row)

    async def revoke_token(self, token_id: str) -> bool:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.revoke_token, {"now": self._db.now_param(), "id": token_id})
            row = await cur.fetchone()
        return row is not None
