"""A worker never holds more leases than its concurrency: a job keeps its slot until its
outcome is written, a completion waiting in the batch buffer included. Otherwise a
``kill -9`` re-runs more jobs than were in flight (RELIABILITY.md: duplicates at most
concurrency x killed processes)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from tests.integration import worker_tasks as t

from conveyor import Conveyor, JobStatus
from conveyor.backend import LIST_LIMIT_MAX, Backend, JobFilter, ListRequest
from conveyor.testing import run_worker
from conveyor.worker import Worker, WorkerConfig

CONCURRENCY = 4
JOBS = 300


async def running_for(backend: Backend, worker: str) -> int:
    """Jobs the backend shows in ``running`` under this worker's lease."""
    request = ListRequest(JobFilter(statuses=frozenset({JobStatus.RUNNING})), LIST_LIMIT_MAX)
    page = await backend.list_jobs(request)
    return sum(1 for job in page.jobs if job.lease_owner == worker)


async def sample_held(worker: Worker, stop: asyncio.Event) -> int:
    """The most leases the worker held, sampled at every turn of the event loop."""
    peak = 0
    while not stop.is_set():
        peak = max(peak, worker.leases_held)
        await asyncio.sleep(0)
    return peak


async def sample_backend(backend: Backend, worker: str, stop: asyncio.Event) -> list[int]:
    samples = []
    while not stop.is_set():
        samples.append(await running_for(backend, worker))
        await asyncio.sleep(0.002)
    return samples


async def test_leases_held_never_exceed_concurrency(app: Conveyor, config: WorkerConfig) -> None:
    jobs = await t.add.enqueue_many_async([{"a": i, "b": 1} for i in range(JOBS)])
    # A long flush interval and large batches: completions wait in the buffer, so a worker
    # that freed the slot when the handler returned would claim far past its concurrency.
    slow_flush = replace(
        config,
        queues=("default",),
        concurrency=CONCURRENCY,
        completion_flush_interval=timedelta(milliseconds=100),
        completion_batch=1000,
    )
    async with run_worker(app, config=slow_flush) as w:
        stop = asyncio.Event()
        held = asyncio.create_task(sample_held(w.worker, stop))
        observed = asyncio.create_task(sample_backend(w.backend, w.worker.worker_id, stop))
        await w.drain()
        stop.set()
        peak, samples = await held, await observed
    done = [await w.backend.get(j.id) for j in jobs]
    assert all(j is not None and j.status is JobStatus.COMPLETED for j in done)
    assert 0 < peak <= CONCURRENCY, peak
    assert samples and max(samples) <= CONCURRENCY, max(samples)
