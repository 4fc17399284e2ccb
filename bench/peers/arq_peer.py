"""arq (asyncio, Redis).

Worker: 2 x ``arq peers.arq_peer.WorkerSettings`` with ``max_jobs`` N (arq's default is
10) and arq's default ``poll_delay`` (0.5 s: arq polls its sorted set, it does not block).
Enqueue: ``ArqRedis.enqueue_job`` (single); arq has no batch enqueue, so bulk runs a batch
of ``enqueue_job`` calls concurrently (``asyncio.gather``, 50 in flight) on the pool.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from peers.ledger import record, sleep_seconds
from peers.workload import Spec

IN_FLIGHT = 50  # concurrent enqueue_job calls in the bulk path (the pool has a cap)
SETTINGS = RedisSettings.from_dsn(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))


async def noop(ctx: dict[str, Any], i: int) -> None:
    t = time.time_ns()
    record(i, t, t)


async def sleepy(ctx: dict[str, Any], i: int) -> None:
    t = time.time_ns()
    await asyncio.sleep(sleep_seconds(i))
    record(i, t, time.time_ns())


class WorkerSettings:
    functions = [noop, sleepy]
    redis_settings = SETTINGS
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "10"))


class Adapter:
    system = "arq"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "2 x `arq` worker, max_jobs N, default poll_delay 0.5 s"
        self.runner = asyncio.Runner()
        self.pool = self.runner.run(create_pool(RedisSettings.from_dsn(url)))

    def setup(self) -> None:
        self.runner.run(self.pool.ping())

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        self.runner.run(self.enqueue_one_async(job_id, sleep))

    async def enqueue_one_async(self, job_id: int, sleep: bool) -> None:
        await self.pool.enqueue_job("sleepy" if sleep else "noop", job_id)

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        name = "sleepy" if sleep else "noop"

        limit = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> None:
            async with limit:
                await self.pool.enqueue_job(name, i)

        async def batch() -> None:
            await asyncio.gather(*(one(i) for i in ids))

        self.runner.run(batch())

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        cmd = [sys.executable, "-m", "arq", "peers.arq_peer.WorkerSettings"]
        return [cmd for _ in range(spec.processes)]

    def close(self) -> None:
        self.runner.run(self.pool.aclose())
        self.runner.close()
