"""Celery with the Redis broker.

Worker: throughput/latency ``celery worker --pool prefork -c 2`` (Celery's default pool and
concurrency on 2 CPUs: 2 worker processes under one master); the mix ``--pool threads -c N``
in 2 worker instances (Celery's documented pool for I/O-bound tasks). Gossip, mingle and
heartbeat off (documented start-up/traffic savings). No result backend (results ignored).
Enqueue: ``apply_async`` (single); bulk: one acquired producer reused for every
``apply_async`` (Celery has no batch publish).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from celery import Celery

from peers.ledger import record, sleep_seconds
from peers.workload import Spec

QUEUE = "peers"
app = Celery("peers", broker=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="peers.noop")
def noop(i: int) -> None:
    t = time.time_ns()
    record(i, t, t)


@app.task(name="peers.sleepy")
def sleepy(i: int) -> None:
    t = time.time_ns()
    time.sleep(sleep_seconds(i))
    record(i, t, time.time_ns())


class Adapter:
    system = "celery"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "prefork -c 2 (throughput, latency); 2 x threads pool -c N (mix)"
        app.conf.broker_url = url

    def setup(self) -> None:
        app.connection_for_write().ensure_connection(max_retries=3)

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        (sleepy if sleep else noop).apply_async((job_id,))

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        task = sleepy if sleep else noop
        with app.producer_or_acquire() as producer:
            for i in ids:
                task.apply_async((i,), producer=producer)

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        base = [
            sys.executable, "-m", "celery", "-A", "peers.celery_peer", "worker", "-Q", QUEUE,
            "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        if not mix:
            return [[*base, "--pool", "prefork", "-c", str(spec.processes), "-n", "w0@%h"]]
        return [
            [*base, "--pool", "threads", "-c", str(spec.mix_concurrency), "-n", f"w{k}@%h"]
            for k in range(spec.processes)
        ]

    def close(self) -> None:
        app.close()
