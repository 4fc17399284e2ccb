"""Queues, logs, workers and API tokens on Redis: everything off the hot path.

Keys (under the prefix): ``qs:<queue>`` settings hash, ``queues`` set of known queues,
``counts`` hash of per ``status:queue`` counters kept by the scripts, ``log:<id>`` list of
``"<micros> <line>"``, ``workers`` hash id -> ``"<micros> <json>"``, ``tokens`` hash id ->
JSON, ``tokenhash`` hash secret hash -> id, ``revoked`` hash id -> micros.
Used by ``RedisBackend`` (mixed in).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import orjson

from conveyor.backend import LogLine, QueueSettings, QueueStats, TokenRecord, WorkerInfo
from conveyor.backends.redis.codec import at, micros_of
from conveyor.backends.redis.connection import RedisCore, translated
from conveyor.backends.redis.store import as_bytes, as_list
from conveyor.clock import to_micros
from conveyor.errors import JobNotFound
from conveyor.jobs import JobId, JobStatus, JSONValue, WorkerId

STATUSES = (
    JobStatus.SCHEDULED,
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.RETRYING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)  # the order stats.lua reports counts in


class RedisQueueAdmin:
    _core: RedisCore

    async def stats(self) -> list[QueueStats]:
        reply = as_list(await self._core.run("stats"))
        out: list[QueueStats] = []
        for item in reply[1:]:
            queue, counts, paused, max_depth, has_settings, oldest, done, failed = as_list(item)
            numbers = [int(c) if isinstance(c, int) else 0 for c in as_list(counts)]
            if not any(numbers) and has_settings != 1:
                continue
            out.append(
                QueueStats(
                    queue=as_bytes(queue).decode(),
                    counts=dict(zip(STATUSES, numbers, strict=True)),
                    oldest_queued_at=at(as_bytes(oldest)) if oldest else None,
                    completed_last_minute=int(done) if isinstance(done, int) else 0,
                    failed_last_minute=int(failed) if isinstance(failed, int) else 0,
                    paused=paused == b"1",
                    max_depth=int(as_bytes(max_depth)) if max_depth else None,
                )
            )
        return sorted(out, key=lambda s: s.queue)

    async def configure_queue(self, settings: QueueSettings) -> QueueSettings:
        key = self._core.key("qs", settings.queue)
        depth = "" if settings.max_depth is None else str(settings.max_depth)
        with translated():
            async with self._core.client.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key, mapping={"paused": "1" if settings.paused else "0", "max_depth": depth}
                )
                pipe.sadd(self._core.key("queues"), settings.queue)
                await pipe.execute()
        return settings

    async def queue_settings(self, queue: str) -> QueueSettings:
        with translated():
            paused, depth = await self._core.client.hmget(
                self._core.key("qs", queue), ["paused", "max_depth"]
            )
        return QueueSettings(
            queue=queue, paused=paused == b"1", max_depth=int(depth) if depth else None
        )


class RedisLogs:
    _core: RedisCore

    async def append_log(self, job_id: JobId, lines: Sequence[str]) -> None:
        if await self._core.run("append_log", job_id, *lines) == -1:
            raise JobNotFound(job_id)

    async def read_log(self, job_id: JobId, after: int = 0, limit: int = 1000) -> list[LogLine]:
        after = max(after, 0)
        if limit <= 0:
            return []
        with translated():
            rows = cast(
                "list[bytes]",
                await self._core.client.lrange(
                    self._core.key("log", job_id), after, after + limit - 1
                ),
            )
        out: list[LogLine] = []
        for seq, row in enumerate(rows, start=after + 1):
            micros, _, line = row.partition(b" ")
            out.append(LogLine(seq=seq, at=at(micros), line=line.decode()))
        return out


class RedisWorkerRegistry:
    _core: RedisCore

    async def upsert_worker(self, info: WorkerInfo) -> None:
        data: dict[str, JSONValue] = {
            "host": info.host,
            "pid": info.pid,
            "queues": list(info.queues),
            "kinds": list(info.kinds),
            "concurrency": info.concurrency,
            "running": info.running,
            "started_at": to_micros(info.started_at),
        }
        await self._core.run("registry", "worker", info.id, orjson.dumps(data))

    async def list_workers(self, seen_within: timedelta) -> list[WorkerInfo]:
        now = int(as_bytes(await self._core.run("registry", "now")))
        horizon = now - micros_of(seen_within)
        with translated():
            rows = cast(
                "dict[bytes, bytes]", await self._core.client.hgetall(self._core.key("workers"))
            )
        out: list[WorkerInfo] = []
        for worker_id, row in rows.items():
            seen, _, raw = row.partition(b" ")
            if int(seen) < horizon:
                continue
            data = orjson.loads(raw)
            out.append(
                WorkerInfo(
                    id=WorkerId(worker_id.decode()),
                    host=data["host"],
                    pid=data["pid"],
                    queues=tuple(data["queues"]),
                    kinds=tuple(data["kinds"]),
                    concurrency=data["concurrency"],
                    running=data["running"],
                    started_at=at(data["started_at"]),
                    last_seen_at=at(seen),
                )
            )
        return sorted(out, key=lambda w: w.id)

    async def remove_worker(self, worker_id: WorkerId) -> None:
        with translated():
            await self._core.client.hdel(self._core.key("workers"), worker_id)


class RedisTokenStore:
    _core: RedisCore

    async def create_token(self, record: TokenRecord) -> None:
        data = orjson.dumps(
            {
                "name": record.name,
                "scopes": list(record.scopes),
                "secret_hash": record.secret_hash,
                "created_at": to_micros(record.created_at),
            }
        )
        with translated():
            async with self._core.client.pipeline(transaction=True) as pipe:
                pipe.hset(self._core.key("tokens"), record.id, data)
                pipe.hset(self._core.key("tokenhash"), record.secret_hash, record.id)
                if record.revoked_at is not None:
                    pipe.hset(self._core.key("revoked"), record.id, to_micros(record.revoked_at))
                await pipe.execute()

    async def _records(self, ids: Sequence[bytes] | None) -> list[TokenRecord]:
        with translated():
            async with self._core.client.pipeline(transaction=True) as pipe:
                if ids is None:
                    pipe.hgetall(self._core.key("tokens"))
                else:
                    pipe.hmget(self._core.key("tokens"), list(ids))
                pipe.hgetall(self._core.key("revoked"))
                rows, revoked = await pipe.execute()
        if ids is not None:
            rows = {i: row for i, row in zip(ids, rows, strict=True) if row is not None}
        out = []
        for token_id, raw in rows.items():
            data = orjson.loads(raw)
            gone = revoked.get(token_id)
            out.append(
                TokenRecord(
                    id=token_id.decode(),
                    name=data["name"],
                    scopes=tuple(data["scopes"]),
                    secret_hash=data["secret_hash"],
                    created_at=at(data["created_at"]),
                    revoked_at=None if gone is None else at(gone),
                )
            )
        return sorted(out, key=lambda t: (t.created_at, t.id))

    async def list_tokens(self) -> list[TokenRecord]:
        return await self._records(None)

    async def find_token(self, secret_hash: str) -> TokenRecord | None:
        with translated():
            token_id = cast(
                "bytes | None",
                await self._core.client.hget(self._core.key("tokenhash"), secret_hash),
            )
        if token_id is None:
            return None
        found = await self._records([token_id])
        return found[0] if found else None

    async def revoke_token(self, token_id: str) -> bool:
        return await self._core.run("registry", "revoke", token_id) == 1
