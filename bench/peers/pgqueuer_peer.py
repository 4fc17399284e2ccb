"""pgqueuer (PostgreSQL, asyncpg driver).

Worker: 2 x ``python -m peers.pgqueuer_peer``, which runs exactly what ``pgq run
peers.pgqueuer_peer:main`` runs (``pgqueuer.adapters.cli.cli.asyncio_run`` of
``supervisor.run``: uvloop when present), with the default batch size 10 (jobs taken per
dequeue) for throughput and latency; the mix adds ``max_concurrent_tasks=N``. (``pgq run``
itself crashes at start-up in pgqueuer 1.6.0: its ``--log-level`` parser hands a ``str`` to
``setup_fancy_logger``.) Enqueue: ``Queries.enqueue`` with scalars (single) and with
lists (bulk: one statement per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from peers.ledger import record, sleep_seconds
from peers.workload import Spec


@contextlib.asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """The factory (pgqueuer 1.6 wants an async context manager, not a coroutine)."""
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

    try:
        yield pgq
    finally:
        await connection.close()


class Adapter:
    system = "pgqueuer"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "2 x `pgq run` equivalent, batch size 10; mix: max_concurrent_tasks N"
        self.runner = asyncio.Runner()
        self.conn = self.runner.run(asyncpg.connect(url))
        self.queries = Queries(AsyncpgDriver(self.conn))

    def setup(self) -> None:
        self.runner.run(self.queries.install())

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        self.runner.run(self.enqueue_one_async(job_id, sleep))

    async def enqueue_one_async(self, job_id: int, sleep: bool) -> None:
        await self.queries.enqueue("sleepy" if sleep else "noop", str(job_id).encode())

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        name = "sleepy" if sleep else "noop"
        payloads: list[bytes | None] = [str(i).encode() for i in ids]
        self.runner.run(self.queries.enqueue([name] * len(ids), payloads, [0] * len(ids)))

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        cmd = [sys.executable, "-m", "peers.pgqueuer_peer"]
        if mix:
            cmd += ["--max-concurrent-tasks", str(spec.mix_concurrency)]
        return [cmd for _ in range(spec.processes)]

    def close(self) -> None:
        self.runner.run(self.conn.close())
        self.runner.close()


if __name__ == "__main__":
    import argparse

    from pgqueuer.adapters.cli import supervisor
    from pgqueuer.adapters.cli.cli import asyncio_run

    parser = argparse.ArgumentParser()
    parser.add_argument("--max-concurrent-tasks", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=10)
    opts = parser.parse_args()
    asyncio_run(
        supervisor.run(
            main, batch_size=opts.batch_size, max_concurrent_tasks=opts.max_concurrent_tasks
        )
    )
