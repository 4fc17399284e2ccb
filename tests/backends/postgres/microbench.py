"""Micro-benchmark of the PostgreSQL engine (not collected by pytest):

    PYTHONPATH=. .venv/bin/python tests/backends/postgres/microbench.py [--jobs 20000]
        [--batch 64] [--workers 1] [--fsync] [--url postgresql://...]

Enqueue N jobs in one call, then claim in batches and complete each batch in one call,
with ``--workers`` concurrent claim loops (each its own backend and pool, as separate
processes would have); prints jobs/s for each phase. Without ``--url`` it starts a
throwaway server (tests/services.py). The figure is the backend's own ceiling (no worker,
no handler); end-to-end throughput is measured by bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from tests.services import PostgresServer

from conveyor.backend import ClaimRequest, Completion
from conveyor.backends.postgres import PostgresBackend
from conveyor.jobs import NewJob, WorkerId


async def _drain(url: str, name: str, batch: int) -> int:
    backend = PostgresBackend(url, migrate=False, pool_max=2)
    await backend.open()
    done = 0
    request = ClaimRequest(worker=WorkerId(name), queues=("default",), limit=batch)
    try:
        while claimed := await backend.claim(request):
            lost = await backend.complete([Completion(c.lease, None) for c in claimed])
            assert not lost
            done += len(claimed)
    finally:
        await backend.close()
    return done


async def run(url: str, jobs: int, batch: int, workers: int) -> dict[str, float]:
    backend = PostgresBackend(url)
    await backend.open()
    try:
        new = [NewJob(kind="bench.noop", payload={"n": i}) for i in range(jobs)]
        start = time.perf_counter()
        out = await backend.enqueue(new)
        enqueue_s = time.perf_counter() - start
        assert len(out) == jobs
    finally:
        await backend.close()
    start = time.perf_counter()
    counts = await asyncio.gather(*(_drain(url, f"w{i}", batch) for i in range(workers)))
    process_s = time.perf_counter() - start
    assert sum(counts) == jobs, counts
    return {"enqueue_jobs_per_s": jobs / enqueue_s, "process_jobs_per_s": jobs / process_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fsync", action="store_true", help="durable server settings")
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        server = PostgresServer(fsync=args.fsync).init().start()
        url = server.url
    try:
        result = asyncio.run(run(url, args.jobs, args.batch, args.workers))
    finally:
        if server is not None:
            server.destroy()
    for key, value in result.items():
        print(f"{key}: {value:,.0f}")


if __name__ == "__main__":
    main()
