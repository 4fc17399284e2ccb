"""Micro-benchmark of the Redis engine in one process (not collected by pytest):

    .venv/bin/python tests/backends/redis/microbench.py [--jobs 20000] [--batch 64]
        [--appendfsync always|everysec|no] [--url redis://127.0.0.1:6379/0]

Starts its own redis-server (AOF on) unless --url is given. Enqueues N jobs in one call,
then claims in batches and completes each batch in one call; prints jobs/s for each phase,
and the memory per stored job (INFO used_memory delta over the enqueue, and MEMORY USAGE
of one job hash). The end-to-end target (8,000 jobs/s with 2 worker processes) is measured
by bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import redis.asyncio as aioredis
from tests.services import RedisServer

from conveyor.backend import ClaimRequest, Completion
from conveyor.backends.redis import RedisBackend
from conveyor.jobs import NewJob, WorkerId


async def used_memory(client: aioredis.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def run(url: str, jobs: int, batch: int) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    backend = RedisBackend(f"{url}?prefix={prefix}")
    await backend.open()
    raw = aioredis.Redis.from_url(url)
    try:
        new = [NewJob(kind="noop", payload={"i": i}) for i in range(jobs)]
        before = await used_memory(raw)
        started = time.perf_counter()
        enqueued = await backend.enqueue(new)
        enqueue_s = time.perf_counter() - started
        per_job = (await used_memory(raw) - before) / jobs
        hash_bytes = await raw.memory_usage(f"{prefix}:job:{enqueued[0].job.id}")

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
        total_s = time.perf_counter() - started
        assert done == jobs, done
        per_completed = (await used_memory(raw) - before) / jobs
        return {
            "enqueue_jobs_per_s": jobs / enqueue_s,
            "process_jobs_per_s": jobs / total_s,
            "claim_ms_per_batch": 1000 * claim_s / (jobs / batch),
            "complete_ms_per_batch": 1000 * complete_s / (jobs / batch),
            "bytes_per_queued_job": per_job,
            "bytes_per_completed_job": per_completed,
            "job_hash_bytes": float(hash_bytes or 0),
        }
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await raw.delete(*keys[i : i + 1000])
        await raw.aclose()
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--appendfsync", default="always")
    parser.add_argument("--url")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        server = RedisServer(appendonly=True, appendfsync=args.appendfsync).start()
        url = server.url
    try:
        results = asyncio.run(run(url, args.jobs, args.batch))
    finally:
        if server is not None:
            server.destroy()
    for name, value in results.items():
        print(f"{name:24} {value:12.1f}")


if __name__ == "__main__":
    main()
