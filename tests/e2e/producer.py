"""The producer of the fault tests: enqueues ``record`` jobs and writes every ACKNOWLEDGED
enqueue to the ledger. Used in-process by the tests, and as a process of its own
(``python -m tests.e2e.producer --count N``) when producer and workers must be separate.

Each job's idempotency key is its marker, so a batch whose outcome is unknown (the server
went away mid-call) can be retried until it is acknowledged without creating a second job:
the retry returns the stored one. Only acknowledged (marker, job id) pairs enter the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path

from tests.e2e.ledger import LEDGER_ENV, record_enqueued
from tests.e2e.ledger_tasks import KIND, QUEUE

from conveyor.backend import Backend
from conveyor.backends import open_backend
from conveyor.errors import BackendUnavailable
from conveyor.jobs import NewJob


def new_jobs(markers: Sequence[str], sleep_ms: float) -> list[NewJob]:
    return [
        NewJob(
            kind=KIND,
            queue=QUEUE,
            payload={"marker": m, "sleep_ms": sleep_ms},
            max_attempts=20,
            idempotency_key=m,
        )
        for m in markers
    ]


async def enqueue_acknowledged(
    backend: Backend,
    ledger: Path,
    markers: Sequence[str],
    *,
    sleep_ms: float = 0.0,
    batch: int = 500,
    retry_for: float = 60.0,
    pause: float = 0.0,
) -> int:
    """Enqueue ``markers`` in batches; retry a failed batch (same idempotency keys) for up to
    ``retry_for`` seconds. Returns how many batches needed a retry."""
    retried = 0
    for start in range(0, len(markers), batch):
        chunk = markers[start : start + batch]
        deadline = time.monotonic() + retry_for
        while True:
            try:
                stored = await backend.enqueue(new_jobs(chunk, sleep_ms))
                break
            except BackendUnavailable:  # only an outage is worth retrying
                if time.monotonic() > deadline:
                    raise
                retried += 1
                await asyncio.sleep(0.1)
        record_enqueued(ledger, [(m, str(e.job.id)) for m, e in zip(chunk, stored, strict=True)])
        if pause:
            await asyncio.sleep(pause)
    return retried


async def _main(args: argparse.Namespace) -> None:
    backend = open_backend(os.environ["CONVEYOR_DATABASE_URL"])
    await backend.open()
    try:
        markers = [f"{args.prefix}-{i}" for i in range(args.count)]
        await enqueue_acknowledged(
            backend,
            Path(os.environ[LEDGER_ENV]),
            markers,
            sleep_ms=args.sleep_ms,
            batch=args.batch,
            pause=args.pause,
        )
    finally:
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--prefix", default="p")
    parser.add_argument("--sleep-ms", type=float, default=0.0)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between batches")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
