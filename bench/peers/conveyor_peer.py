"""Conveyor itself, on SQLite, PostgreSQL or Redis, through its public API only.

Worker: ``python -m conveyor worker --app peers.conveyor_peer:app --processes 2
--concurrency N``. Enqueue: ``Task.enqueue_async`` (single) and ``enqueue_many_async``
(bulk, batches of ``Spec.batch``), as bench/throughput.py does (whose ``noop`` task cannot
be reused: the jobs here must record to the ledger).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from conveyor import Conveyor
from peers.ledger import record, sleep_seconds
from peers.workload import Spec

QUEUE = "peers"
app = Conveyor()


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
    system = "conveyor"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "`conveyor worker --processes 2 --concurrency N` (asyncio)"
        self.runner = asyncio.Runner()
        app.use_database_url(url)

    def setup(self) -> None:
        self.runner.run(app.backend())

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        self.runner.run(self.enqueue_one_async(job_id, sleep))

    async def enqueue_one_async(self, job_id: int, sleep: bool) -> None:
        await (sleepy if sleep else noop).enqueue_async(i=job_id)

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        task = sleepy if sleep else noop
        self.runner.run(task.enqueue_many_async([{"i": i} for i in ids]))

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        conc = spec.mix_concurrency if mix else spec.concurrency
        return [[
            sys.executable, "-m", "conveyor", "worker", "--app", "peers.conveyor_peer:app",
            "--queues", QUEUE, "--concurrency", str(conc), "--processes", str(spec.processes),
            "--database-url", self.url,
        ]]  # fmt: skip

    def close(self) -> None:
        self.runner.run(app.aclose())
        self.runner.close()
