"""pgqueuer (PostgreSQL, asyncpg driver).

Worker: 2 × ``pgq run peers.pgqueuer_peer:main`` with the default ``--batch-size 10``
(jobs taken per dequeue) for throughput and latency; the mix adds
``--max-concurrent-tasks N``. Enqueue: ``Queries.enqueue`` with scalars (single) and with
lists (bulk: one statement per batch).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from peers.ledger import record, sleep_seconds
from peers.workload import Spec


async def main() -> PgQueuer:
    connection = await asyncpg.connect(os.environ["BENCH_URL"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        t = time.time_ns()
        record(int(job.payload or b"0"), t, t)

    @pgq.entrypoint("sleepy")
    async def sleepy(job: Job) -> None:
        t = time.time_ns()
        i = int(job.payload or b"0")
        await asyncio.sleep(sleep_seconds(i))
        record(i, t, time.time_ns())

    return pgq


class Adapter:
    system = "pgqueuer"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "2 × `pgq run`, batch-size 10; mix: --max-concurrent-tasks N"
        self.runner = asyncio.Runner()
        self.conn = self.runner.run(asyncpg.connect(url))
        self.queries = Queries(AsyncpgDriver(self.conn))

    def setup(self) -> None:
        self.runner.run(self.queries.install())

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        name = "sleepy" if sleep else "noop"
        self.runner.run(self.queries.enqueue(name, str(job_id).encode()))

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        name = "sleepy" if sleep else "noop"
        payloads: list[bytes | None] = [str(i).encode() for i in ids]
        self.runner.run(self.queries.enqueue([name] * len(ids), payloads, [0] * len(ids)))

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        cmd = [sys.executable, "-m", "pgqueuer", "run", "peers.pgqueuer_peer:main",
               "--log-level", "WARNING"]  # fmt: skip
        if mix:
            cmd += ["--max-concurrent-tasks", str(spec.mix_concurrency)]
        return [cmd for _ in range(spec.processes)]

    def close(self) -> None:
        self.runner.run(self.conn.close())
        self.runner.close()
