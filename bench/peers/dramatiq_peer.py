"""Dramatiq with the Redis broker, default middleware.

Worker: ``dramatiq peers.dramatiq_peer -p 2 -t N`` (2 processes, N worker threads each; the
default is 8). Enqueue: ``Actor.send`` for single and bulk (Dramatiq has no batch enqueue;
``group`` sends one message at a time too).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from peers.ledger import record, sleep_seconds
from peers.workload import Spec

QUEUE = "peers"
broker = RedisBroker(url=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(i: int) -> None:
    t = time.time_ns()
    record(i, t, t)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def sleepy(i: int) -> None:
    t = time.time_ns()
    time.sleep(sleep_seconds(i))
    record(i, t, time.time_ns())


class Adapter:
    system = "dramatiq"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "`dramatiq -p 2 -t N` (threads)"

    def setup(self) -> None:
        broker.client.ping()

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        (sleepy if sleep else noop).send(job_id)

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        actor = sleepy if sleep else noop
        for i in ids:
            actor.send(i)

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        threads = spec.mix_concurrency if mix else spec.concurrency
        return [[
            sys.executable, "-m", "dramatiq", "peers.dramatiq_peer", "-p", str(spec.processes),
            "-t", str(threads), "-Q", QUEUE,
        ]]  # fmt: skip

    def close(self) -> None:
        broker.close()
