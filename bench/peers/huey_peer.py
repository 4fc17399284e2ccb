"""Huey, Redis mode (``RedisHuey``, blocking pop) and SQLite mode (``SqliteHuey``, polling).

Worker: 2 x ``huey_consumer peers.huey_peer.huey -k thread -w N -n`` (N worker threads per
consumer process; ``-n``: no periodic-task scheduler). Default polling delays (SQLite mode
polls from 0.1 s, backing off to 10 s when idle). Enqueue: calling the task (single);
bulk: Huey has no batch enqueue, so it is the same call in a loop.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from huey import RedisHuey, SqliteHuey

from peers.ledger import record, sleep_seconds
from peers.workload import Spec


def _make(backend: str, url: str) -> RedisHuey | SqliteHuey:
    if backend == "sqlite":
        return SqliteHuey("peers", filename=url.removeprefix("sqlite:///"))
    return RedisHuey("peers", url=url)


huey = _make(os.environ.get("BENCH_BACKEND", "redis"), os.environ.get("BENCH_URL", ""))


@huey.task()
def noop(i: int) -> None:
    t = time.time_ns()
    record(i, t, t)


@huey.task()
def sleepy(i: int) -> None:
    t = time.time_ns()
    time.sleep(sleep_seconds(i))
    record(i, t, time.time_ns())


class Adapter:
    system = "huey"

    def __init__(self, backend: str, url: str) -> None:
        self.backend, self.url = backend, url
        self.notes = "2 x `huey_consumer -k thread -w N`, default polling delays"

    def setup(self) -> None:
        huey.pending_count()  # touches the storage (creates the SQLite tables)

    def enqueue_one(self, job_id: int, sleep: bool) -> None:
        (sleepy if sleep else noop)(job_id)

    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None:
        task = sleepy if sleep else noop
        for i in ids:
            task(i)

    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]:
        threads = spec.mix_concurrency if mix else spec.concurrency
        cmd = [
            sys.executable, "-m", "huey.bin.huey_consumer", "peers.huey_peer.huey",
            "-k", "thread", "-w", str(threads), "-n", "-q",
        ]  # fmt: skip
        return [cmd for _ in range(spec.processes)]

    def close(self) -> None:
        huey.flush_locks()  # nothing to release otherwise: connections are per thread
