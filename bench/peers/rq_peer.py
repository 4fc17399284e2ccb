"""RQ with ``SimpleWorker`` (no fork per job). RQ has no in-process concurrency, so every
workload gets 2 worker processes running one job at a time, the mix included.
Enqueue: ``Queue.enqueue`` (single); bulk: ``Queue.enqueue_many`` with
``Queue.prepare_data`` (one pipeline per batch). Default result TTL (results kept 500 s).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from redis import Redis
from rq import Queue

from peers.ledger import record, sleep_seconds
from peers.workload import Spec

QUEUE = "peers"


def noop(i: int) -> None:
    t = time.time_ns()
    record(i, t, t)


def sleepy(i: int) -> None:
    t = time.time_ns()
    time.sleep(sleep_seconds(i))
    record(i, t, time.time_ns())


class Adapter:
    system = "rq"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "2 x `rq worker -w SimpleWorker` (one job at a time per process)"
        self.redis = Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.redis)

    def setup(self) -> None:
        self.redis.ping()

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        self.queue.enqueue(sleepy if sleep else noop, job_id)

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        fn = sleepy if sleep else noop
        self.queue.enqueue_many([Queue.prepare_data(fn, (i,)) for i in ids])

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        cmd = [
            sys.executable, "-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker",
            "-u", self.url, "--logging_level", "WARNING", QUEUE,
        ]  # fmt: skip
        return [cmd for _ in range(spec.processes)]

    def close(self) -> None:
        self.redis.close()
