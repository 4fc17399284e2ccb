"""Benchmark: webhook deliveries/s with 2 worker processes on one SQLite file, to a local
receiver that answers at once; then the same load with one receiver that hangs until the
timeout mixed in, to show what a dead destination costs the healthy ones.

    .venv/bin/python bench/webhooks.py [--jobs 2000] [--processes 2] [--concurrency 64]

Receivers are raw asyncio HTTP servers on 127.0.0.1 in this process; workers are separate
processes (multiprocessing, spawn) running ``conveyor.worker.Worker`` with the webhook kind.
Endpoints/breakers are shared through the backend when it implements ``RecordStore``;
otherwise each worker keeps them in memory (breakers then per process) and this is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

HEALTHY_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Receiver:
    def __init__(self, hang: bool) -> None:
        self.hang = hang
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                now = time.monotonic()
                self.count += 1
                self.first = self.first or now
                self.last = now
                if self.hang:
                    await asyncio.sleep(3600)
                writer.write(HEALTHY_OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()


def run_worker(url: str, concurrency: int, timeout_s: float, stop_at: float, done: object) -> None:
    from conveyor.backend import RecordStore
    from conveyor.backends import open_backend
    from conveyor.backends.memory_records import MemoryRecords
    from conveyor.handler import Registry
    from conveyor.handlers.webhook import (
        WEBHOOK_KIND,
        AddressPolicy,
        WebhookHandler,
        WebhookSettings,
        webhook_options,
    )
    from conveyor.testing import TEST_CONFIG
    from conveyor.worker import Worker

    async def main() -> None:
        backend = open_backend(url)
        await backend.open()
        records = backend if isinstance(backend, RecordStore) else MemoryRecords()
        settings = WebhookSettings(
            policy=AddressPolicy.parse("127.0.0.0/8"),
            total_timeout=timedelta(seconds=timeout_s),
        )
        handler = WebhookHandler(records, settings=settings)
        registry = Registry()
        registry.register(WEBHOOK_KIND, handler, webhook_options())
        config = replace(
            TEST_CONFIG, queues=("webhooks",), concurrency=concurrency, cron=False, retention=None
        )
        worker = Worker(backend, registry=registry, config=config)
        task = asyncio.create_task(worker.run())
        while time.time() < stop_at and not done.is_set():  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)
        await worker.stop(grace=timedelta(seconds=1))
        await task
        await handler.aclose()
        await backend.close()

    asyncio.run(main())


async def load(url: str, targets: list[str], jobs: int) -> None:
    from conveyor.backends import open_backend
    from conveyor.handlers.webhook import webhook_job

    backend = open_backend(url)
    await backend.open()
    batch = [
        webhook_job(url=targets[i % len(targets)], body={"i": i, "pad": "x" * 200})
        for i in range(jobs)
    ]
    for start in range(0, len(batch), 500):
        await backend.enqueue(batch[start : start + 500])
    await backend.close()


async def scenario(args: argparse.Namespace, with_dead: bool) -> tuple[float, int]:
    healthy, dead = Receiver(hang=False), Receiver(hang=True)
    await healthy.start()
    await dead.start()
    tmp = tempfile.mkdtemp(prefix="conveyor-bench-")
    try:
        return await _scenario(args, with_dead, healthy, dead, f"sqlite:///{tmp}/bench.db")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _scenario(
    args: argparse.Namespace, with_dead: bool, healthy: Receiver, dead: Receiver, url: str
) -> tuple[float, int]:
    from conveyor.backends import open_backend

    b = open_backend(url)
    await b.open()  # migrate once before the workers start
    await b.close()
    targets = [f"http://127.0.0.1:{healthy.port}/h"]
    if with_dead:
        # one delivery in ten goes to the receiver that hangs until the timeout
        targets = targets * 9 + [f"http://127.0.0.1:{dead.port}/d"]
    stop_at = time.time() + args.duration
    ctx = multiprocessing.get_context("spawn")
    done = ctx.Event()  # set once measured: workers stop then, not at the end of --duration
    procs = [
        ctx.Process(target=run_worker, args=(url, args.concurrency, args.timeout, stop_at, done))
        for _ in range(args.processes)
    ]
    for p in procs:
        p.start()
    await asyncio.sleep(1.5)  # let them start
    await load(url, targets, args.jobs)
    expected = sum(1 for i in range(args.jobs) if "/h" in targets[i % len(targets)])
    deadline = time.time() + args.duration
    while healthy.count < expected and time.time() < deadline:
        await asyncio.sleep(0.05)
    elapsed = healthy.last - healthy.first
    done.set()
    for p in procs:
        p.join()
    return (healthy.count / elapsed if elapsed > 0 else 0.0), healthy.count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=5.0, help="webhook total timeout, s")
    parser.add_argument("--duration", type=float, default=60.0, help="max seconds per run")
    args = parser.parse_args()
    rate, n = asyncio.run(scenario(args, with_dead=False))
    print(f"healthy only: {rate:8.1f} deliveries/s ({n} delivered)")
    rate2, n2 = asyncio.run(scenario(args, with_dead=True))
    print(f"with 10% to a dead receiver: {rate2:8.1f} healthy deliveries/s ({n2} delivered)")


if __name__ == "__main__":
    main()
