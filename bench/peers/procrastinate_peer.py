"""Procrastinate (PostgreSQL, psycopg 3 connector).

Worker: 2 x ``procrastinate --app peers.procrastinate_peer.app worker -c N`` (async jobs;
LISTEN/NOTIFY on, the default). Enqueue: ``Task.defer_async`` (single); bulk:
``Task.batch_defer_async`` (one statement per batch).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence

from procrastinate import App, PsycopgConnector

from peers.ledger import record, sleep_seconds
from peers.workload import Spec

QUEUE = "peers"
app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_URL", "")))


@app.task(name="peers.noop", queue=QUEUE)
async def noop(i: int) -> None:
    t = time.time_ns()
    record(i, t, t)


@app.task(name="peers.sleepy", queue=QUEUE)
async def sleepy(i: int) -> None:
    t = time.time_ns()
    await asyncio.sleep(sleep_seconds(i))
    record(i, t, time.time_ns())


class Adapter:
    system = "procrastinate"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "2 x `procrastinate worker -c N` (asyncio, LISTEN/NOTIFY)"
        self.runner = asyncio.Runner()
        self.runner.run(self._open())

    @staticmethod
    async def _open() -> None:
        await app.open_async()

    def setup(self) -> None:
        self.runner.run(app.schema_manager.apply_schema_async())

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        self.runner.run(self.enqueue_one_async(job_id, sleep))

    async def enqueue_one_async(self, job_id: int, sleep: bool) -> None:
        await (sleepy if sleep else noop).defer_async(i=job_id)

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        task = sleepy if sleep else noop
        self.runner.run(task.batch_defer_async(*({"i": i} for i in ids)))

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        conc = spec.mix_concurrency if mix else spec.concurrency
        cmd = [
            sys.executable, "-m", "procrastinate", "--app", "peers.procrastinate_peer.app",
            "worker", "--concurrency", str(conc), "--queues", QUEUE,
        ]  # fmt: skip
        return [cmd for _ in range(spec.processes)]

    def close(self) -> None:
        self.runner.run(app.close_async())
        self.runner.close()
