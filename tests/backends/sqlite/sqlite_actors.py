"""Separate OS processes for the SQLite engine tests (run as a script, not collected):

    python sqlite_actors.py open URL                     open (migrating) and close
    python sqlite_actors.py claim URL OUT BATCH          claim+complete until empty; ids -> OUT
    python sqlite_actors.py enqueue-key URL KEY OUT      enqueue one job with KEY; "id created"
    python sqlite_actors.py enqueue-after URL SECONDS    sleep, then enqueue one job
    python sqlite_actors.py hold-lock URL SECONDS        hold BEGIN IMMEDIATE that long
    python sqlite_actors.py enqueue-and-hang URL         enqueue, print the id, claim it, hang

When CONVEYOR_TEST_GO names a file, every process says it is ready (``<go>.ready.<pid>``)
and waits for that file, so that they all start their work at the same moment.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

from conveyor.backend import ClaimRequest, Completion
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.jobs import NewJob, WorkerId


def wait_for_go() -> None:
    go = os.environ.get("CONVEYOR_TEST_GO")
    if not go:
        return
    Path(f"{go}.ready.{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.002)


async def claim_all(url: str, out: str, batch: int) -> None:
    backend = SQLiteBackend(url)
    await backend.open()
    worker = WorkerId(f"w{os.getpid()}")
    wait_for_go()
    claimed_ids: list[str] = []
    try:
        while True:
            claimed = await backend.claim(
                ClaimRequest(worker=worker, queues=("default",), limit=batch)
            )
            if not claimed:
                break
            claimed_ids.extend(c.job.id for c in claimed)
            lost = await backend.complete([Completion(lease=c.lease) for c in claimed])
            assert not lost, lost
    finally:
        await backend.close()
    Path(out).write_text("\n".join(claimed_ids))


async def enqueue_key(url: str, key: str, out: str) -> None:
    backend = SQLiteBackend(url)
    await backend.open()
    wait_for_go()
    try:
        [outcome] = await backend.enqueue([NewJob(kind="k", idempotency_key=key)])
    finally:
        await backend.close()
    Path(out).write_text(f"{outcome.job.id} {int(outcome.created)}")


async def enqueue_after(url: str, seconds: float) -> None:
    backend = SQLiteBackend(url)
    await backend.open()
    try:
        await asyncio.sleep(seconds)
        await backend.enqueue([NewJob(kind="k", queue="wake")])
        print(time.time(), flush=True)
    finally:
        await backend.close()


async def enqueue_and_hang(url: str) -> None:
    backend = SQLiteBackend(url)
    await backend.open()
    [outcome] = await backend.enqueue([NewJob(kind="k", queue="crash")])
    [other] = await backend.enqueue([NewJob(kind="k", queue="crash")])
    await backend.claim(ClaimRequest(worker=WorkerId("doomed"), queues=("crash",), limit=1))
    print(outcome.job.id, other.job.id, flush=True)
    await asyncio.sleep(3600)  # killed with SIGKILL by the test


async def open_close(url: str) -> None:
    wait_for_go()
    backend = SQLiteBackend(url)
    await backend.open()
    await backend.close()


def hold_lock(url: str, seconds: float) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def main(argv: list[str]) -> None:
    command, url, *rest = argv
    if command == "claim":
        asyncio.run(claim_all(url, rest[0], int(rest[1])))
    elif command == "enqueue-key":
        asyncio.run(enqueue_key(url, rest[0], rest[1]))
    elif command == "enqueue-after":
        asyncio.run(enqueue_after(url, float(rest[0])))
    elif command == "open":
        asyncio.run(open_close(url))
    elif command == "enqueue-and-hang":
        asyncio.run(enqueue_and_hang(url))
    elif command == "hold-lock":
        hold_lock(url, float(rest[0]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
