"""taskiq with taskiq-redis's ``ListQueueBroker`` (BRPOP; the fastest taskiq-redis broker,
with no acknowledgement: a worker crash loses what it had taken).

Worker: ``taskiq worker peers.taskiq_peer:broker --workers 2 --max-async-tasks N``.
Enqueue: ``kiq`` (single); taskiq has no batch enqueue, so bulk runs a batch of ``kiq``
calls concurrently (``asyncio.gather``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence

from taskiq_redis import ListQueueBroker

from peers.ledger import record, sleep_seconds
from peers.workload import Spec

broker = ListQueueBroker(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))


@broker.task(task_name="peers.noop")
async def noop(i: int) -> None:
    t = time.time_ns()
    record(i, t, t)


@broker.task(task_name="peers.sleepy")
async def sleepy(i: int) -> None:
    t = time.time_ns()
    await asyncio.sleep(sleep_seconds(i))
    record(i, t, time.time_ns())


class Adapter:
    system = "taskiq"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "`taskiq worker --workers 2 --max-async-tasks N`, ListQueueBroker"
        self.runner = asyncio.Runner()

    def setup(self) -> None:
        self.runner.run(broker.startup())

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        self.runner.run(self.enqueue_one_async(job_id, sleep))

    async def enqueue_one_async(self, job_id: int, sleep: bool) -> None:
        await (sleepy if sleep else noop).kiq(job_id)

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        task = sleepy if sleep else noop

        async def batch() -> None:
            await asyncio.gather(*(task.kiq(i) for i in ids))

        self.runner.run(batch())

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        conc = spec.mix_concurrency if mix else spec.concurrency
        return [[
            sys.executable, "-m", "taskiq", "worker", "peers.taskiq_peer:broker",
            "--workers", str(spec.processes), "--max-async-tasks", str(conc),
            "--log-level", "WARNING",
        ]]  # fmt: skip

    def close(self) -> None:
        self.runner.run(broker.shutdown())
        self.runner.close()
