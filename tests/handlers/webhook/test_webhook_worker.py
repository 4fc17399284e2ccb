"""Webhooks run by a real worker (memory engine): retries along the webhook schedule until the
receiver recovers, failures recorded per attempt, and one dead receiver never slowing the
deliveries to a healthy one under load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

from tests.handlers.webhook.conftest import settings
from tests.handlers.webhook.receiver import Receiver, Reply

from conveyor.backends.memory import MemoryBackend
from conveyor.backends.memory_records import MemoryRecords
from conveyor.handler import Registry
from conveyor.handlers.webhook.client import webhook_job
from conveyor.handlers.webhook.delivery import WEBHOOK_KIND, webhook_options
from conveyor.handlers.webhook.handler import WebhookHandler
from conveyor.jobs import Job, JobId, JobStatus
from conveyor.retry import RetryPolicy
from conveyor.testing import TEST_CONFIG
from conveyor.worker import Worker, WorkerConfig

FAST_RETRY = RetryPolicy(base=timedelta(milliseconds=20), cap=timedelta(milliseconds=100))


@asynccontextmanager
async def running_worker(
    backend: MemoryBackend, handler: WebhookHandler, concurrency: int = 16
) -> AsyncIterator[Worker]:
    registry = Registry()
    registry.register(WEBHOOK_KIND, handler, webhook_options(retry_policy=FAST_RETRY))
    config: WorkerConfig = replace(
        TEST_CONFIG,
        queues=("webhooks",),
        concurrency=concurrency,
        poll_interval=timedelta(milliseconds=20),
        cron=False,
        retention=None,
    )
    worker = Worker(backend, registry=registry, config=config)
    task = asyncio.create_task(worker.run())
    await worker.started.wait()
    try:
        yield worker
    finally:
        await worker.stop(grace=timedelta(seconds=5))
        await task
        await handler.aclose()


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def final(backend: MemoryBackend, job_id: JobId) -> Job:
    async def done() -> bool:
        job = await backend.get(job_id)
        return job is not None and job.status.is_final

    await wait_until(done)
    job = await backend.get(job_id)
    assert job is not None
    return job


async def test_retries_on_500_until_success() -> None:
    backend = MemoryBackend()
    handler = WebhookHandler(MemoryRecords(), settings=settings())
    async with Receiver(script=[Reply(500), Reply(500)]) as rx:
        async with running_worker(backend, handler):
            [enqueued] = await backend.enqueue([webhook_job(url=rx.url, body={"n": 1})])
            job = await final(backend, enqueued.job.id)
        assert job.status is JobStatus.COMPLETED and job.attempts == 3
        assert isinstance(job.result, dict) and job.result["status"] == 200
        assert [e.type for e in job.errors] == [
            "conveyor.handlers.webhook.delivery.DeliveryFailed"
        ] * 2
        assert {r.headers.get("webhook-id") for r in rx.requests} == {None}  # unsigned one-off
        assert len(rx.requests) == 3


async def test_dead_letter_after_max_attempts_and_410() -> None:
    backend = MemoryBackend()
    records = MemoryRecords()
    handler = WebhookHandler(records, settings=settings())
    async with Receiver(default=Reply(410)) as rx, running_worker(backend, handler):
        [gone] = await backend.enqueue([webhook_job(url=rx.url, body={})])
        job = await final(backend, gone.job.id)
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.errors[-1].type == "conveyor.Discard" and "410" in job.errors[-1].message


async def test_attempt_details_are_recorded() -> None:
    backend = MemoryBackend()
    handler = WebhookHandler(MemoryRecords(), settings=settings())
    async with Receiver(script=[Reply(503, body=b"busy")]) as rx, running_worker(backend, handler):
        [enqueued] = await backend.enqueue([webhook_job(url=rx.url, body={})])
        job = await final(backend, enqueued.job.id)
    [error] = job.errors
    assert error.details is not None
    assert error.details["status"] == 503 and error.details["response_excerpt"] == "busy"


async def test_dead_receiver_does_not_slow_a_healthy_one_under_load() -> None:
    backend = MemoryBackend()
    handler = WebhookHandler(
        MemoryRecords(),
        settings=settings(total_timeout=timedelta(seconds=3), max_in_flight_per_destination=8),
    )
    async with (
        Receiver(default=Reply(hang=True)) as dead,
        Receiver() as healthy,
        running_worker(backend, handler, concurrency=16),
    ):
        # Warm up, then a healthy-only baseline.
        await backend.enqueue([webhook_job(url=healthy.url, body={"i": -1})])
        await healthy.wait_for(1)
        started = time.monotonic()
        await backend.enqueue([webhook_job(url=healthy.url, body={"i": i}) for i in range(100)])
        await healthy.wait_for(101)
        baseline = time.monotonic() - started
        # Now interleave 40 deliveries to a receiver that hangs until the timeout.
        jobs = []
        for i in range(100):
            jobs.append(webhook_job(url=healthy.url, body={"i": i}))
            if i % 5 == 0:
                jobs.extend(webhook_job(url=dead.url, body={"d": i}) for _ in range(2))
        started = time.monotonic()
        await backend.enqueue(jobs)
        await healthy.wait_for(201, timeout=10)
        mixed = time.monotonic() - started
    print(f"healthy x100: alone {baseline:.3f}s, beside a dead receiver {mixed:.3f}s")
    # The dead receiver hangs for 3 s per request; had any healthy delivery waited behind
    # it, the 100 healthy deliveries would take at least that long.
    assert mixed < 2.0, (baseline, mixed)
    assert 0 < dead.connections <= 8  # it never held more than its share of slots
