"""Micro-benchmark of the SQLite engine in one process (not collected by pytest):

    .venv/bin/python tests/backends/sqlite/microbench.py [--jobs 20000] [--batch 64]
        [--synchronous NORMAL|FULL] [--dir /tmp]

Enqueue N jobs in one call, then claim in batches and complete each batch in one call;
prints jobs/s for each phase. The processing figure is the backend's own ceiling (no
worker, no handler); the issue's target (3,000 jobs/s with 2 worker processes) is measured
end to end by bench/throughput.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from conveyor.backend import ClaimRequest, Completion
from conveyor.backends.sqlite import SQLiteBackend, connection
from conveyor.jobs import NewJob, WorkerId


async def run(jobs: int, batch: int, directory: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        backend = SQLiteBackend(f"sqlite:///{Path(tmp) / 'bench.db'}")
        await backend.open()
        try:
            new = [NewJob(kind="noop", payload={"i": i}) for i in range(jobs)]
            started = time.perf_counter()
            await backend.enqueue(new)
            enqueue_s = time.perf_counter() - started

            request = ClaimRequest(worker=WorkerId("bench"), queues=("default",), limit=batch)
            done = 0
            claim_s = complete_s = 0.0
            started = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                claimed = await backend.claim(request)
                t1 = time.perf_counter()
                if not claimed:
                    break
                lost = await backend.complete([Completion(lease=c.lease) for c in claimed])
                complete_s += time.perf_counter() - t1
                claim_s += t1 - t0
                assert not lost
                done += len(claimed)
            process_s = time.perf_counter() - started
            assert done == jobs, (done, jobs)
            small = [NewJob(kind="noop", payload={"i": i}) for i in range(200)]
            t0 = time.perf_counter()
            for job in small:
                await backend.enqueue([job])
            single_s = time.perf_counter() - t0
        finally:
            await backend.close()
    return {
        "enqueue_jobs_per_s": jobs / enqueue_s,
        "process_jobs_per_s": jobs / process_s,
        "claim_ms_per_batch": 1000 * claim_s / (jobs / batch),
        "complete_ms_per_batch": 1000 * complete_s / (jobs / batch),
        "single_enqueue_per_s": len(small) / single_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--synchronous", default=connection.SYNCHRONOUS)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    connection.SYNCHRONOUS = args.synchronous
    numbers = asyncio.run(run(args.jobs, args.batch, args.dir))
    print(f"sqlite {sqlite3.sqlite_version} synchronous={args.synchronous} dir={args.dir}")
    for name, value in numbers.items():
        print(f"  {name:24} {value:12,.1f}")


if __name__ == "__main__":
    main()
