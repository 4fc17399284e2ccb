"""Worker + real backends: enqueue options, ordering, concurrency, timeouts, cancellation,
graceful shutdown and cron, each observed through the backend and the worker's events."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from tests.integration import worker_tasks as t

from conveyor import Conveyor, JobStatus
from conveyor.backend import JobFilter, ListRequest
from conveyor.backends import open_backend
from conveyor.events import JobReleased, JobTimedOut
from conveyor.testing import run_worker
from conveyor.worker import Worker, WorkerConfig


async def until(check: object, timeout: float = 10.0) -> None:
    """Poll a condition with a deadline."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_enqueue_many_is_processed(app: Conveyor, config: WorkerConfig) -> None:
    jobs = await t.add.enqueue_many_async([{"a": i, "b": i} for i in range(50)])
    assert len({j.id for j in jobs}) == 50
    async with run_worker(app, config=config) as w:
        await w.drain()
        done = [await w.backend.get(j.id) for j in jobs]
    assert [j.result for j in done if j] == [2 * i for i in range(50)]


async def test_idempotency_key_via_options(app: Conveyor, key: str) -> None:
    first = await t.add.options(idempotency_key=key).enqueue_async(a=1, b=1)
    second = await t.add.options(idempotency_key=key).enqueue_async(a=5, b=5)
    assert first.id == second.id and second.payload == {"a": 1, "b": 1}


async def test_delay_and_run_at(app: Conveyor, config: WorkerConfig) -> None:
    delayed = await t.add.options(delay=timedelta(milliseconds=400)).enqueue_async(a=1, b=2)
    assert delayed.status is JobStatus.SCHEDULED
    backend = await app.backend()
    at = await backend.now() + timedelta(milliseconds=300)
    timed = await t.add.options(run_at=at).enqueue_async(a=2, b=2)
    async with run_worker(app, config=config) as w:
        d = await w.wait_for(delayed.id)
        r = await w.wait_for(timed.id)
    assert d.started_at and d.started_at - d.created_at >= timedelta(milliseconds=400)
    assert r.started_at and r.started_at >= at


async def test_priority_order(app: Conveyor, config: WorkerConfig, key: str) -> None:
    for n, priority in [(1, 0), (2, 10), (3, -5), (4, 10), (5, 3)]:
        await t.record.options(priority=priority).enqueue_async(key=key, n=n)
    async with run_worker(app, config=replace(config, concurrency=1, queues=("ordered",))) as w:
        await w.drain()
    assert t.ORDER[key] == [2, 4, 5, 1, 3]


async def test_concurrency_limit_respected(app: Conveyor, config: WorkerConfig, key: str) -> None:
    await t.measured.enqueue_many_async([{"key": key}] * 20)
    async with run_worker(app, config=replace(config, concurrency=3)) as w:
        await w.drain()
    assert t.PEAK[key] == 3


async def test_async_timeout_stops_the_handler(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=config) as w:
        job = await t.async_hang.enqueue_async(key=key)
        done = await w.wait_for(job.id)
        event = await w.wait_for_event(JobTimedOut, lambda e: e.job_id == job.id)
    assert done.status is JobStatus.FAILED and done.errors[0].type == "conveyor.Timeout"
    assert t.SEEN[key] == "stopped" and event.timeout == timedelta(milliseconds=200)


async def test_sync_timeout_frees_the_slot(app: Conveyor, config: WorkerConfig, key: str) -> None:
    """Best effort for threads: the job fails on time and the slot is freed; the thread
    itself runs on until it returns (Python cannot stop a thread)."""
    try:
        async with run_worker(app, config=replace(config, concurrency=1)) as w:
            job = await t.sync_hang.enqueue_async(key=key)
            done = await w.wait_for(job.id, timeout=timedelta(seconds=5))
            after = await t.add.enqueue_async(a=1, b=1)
            assert (await w.wait_for(after.id)).status is JobStatus.COMPLETED
    finally:
        t.gate(key).set()
    assert done.status is JobStatus.FAILED and done.errors[0].type == "conveyor.Timeout"


async def test_process_pool_timeout_kills_the_process(
    app: Conveyor, config: WorkerConfig, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    async with run_worker(app, config=config) as w:
        job = await t.cpu_hang.enqueue_async(pid_file=str(pid_file))
        done = await w.wait_for(job.id, timeout=timedelta(seconds=30))
    assert done.status is JobStatus.FAILED and done.errors[0].type == "conveyor.Timeout"
    pid = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await until(gone)


async def test_cancel_reaches_running_handler(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=config) as w:
        job = await t.wait_forever.enqueue_async(key=key)
        await w.wait_for(job.id, JobStatus.RUNNING)
        await until(lambda: t.SEEN.get(key) == "started")
        await app.cancel_async(job.id)
        done = await w.wait_for(job.id, JobStatus.CANCELLED)
    assert t.SEEN[key] == "cancelled"
    assert done.finished_at is not None


async def test_graceful_shutdown_releases_without_charging(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=config) as w:
        job = await t.wait_forever.enqueue_async(key=key)
        await w.wait_for(job.id, JobStatus.RUNNING)
        await w.worker.stop(grace=timedelta(milliseconds=200))
        released = await w.wait_for_event(JobReleased, lambda e: e.job_id == job.id)
    back = await (await app.backend()).get(job.id)
    assert back is not None and back.status is JobStatus.QUEUED
    assert back.attempts == 0 and back.errors == () and back.lease_owner is None
    assert released.attempt == 1 and t.SEEN[key] == "cancelled"


async def test_an_idle_worker_stops_at_once(app: Conveyor, config: WorkerConfig, key: str) -> None:
    # Idle, the claimer waits for work (or, where the engine hands jobs over, stands by for
    # one). A stop must end that wait at once, not at the end of a 30 s poll interval; a job
    # enqueued after the stop stays queued for the next worker.
    slow_poll = replace(config, poll_interval=timedelta(seconds=30))
    async with run_worker(app, config=slow_poll) as w:
        await asyncio.sleep(0.2)  # the claim came back empty: the claimer is waiting
        started = time.monotonic()
        await w.worker.stop()
        stopped_in = time.monotonic() - started
        job = await t.wait_forever.enqueue_async(key=key)
    assert stopped_in < 10.0  # against a 30 s poll: the wait was ended, not waited out
    back = await (await app.backend()).get(job.id)
    assert back is not None and back.status is JobStatus.QUEUED and back.attempts == 0


async def test_a_worker_with_every_slot_busy_stops_within_its_grace(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    # With every slot busy the claimer waits for one to free up, not for work: a stop must
    # end that wait too, or the grace period would only start once a job finished.
    one_slot = replace(config, concurrency=1)
    async with run_worker(app, config=one_slot) as w:
        job = await t.wait_forever.enqueue_async(key=key)
        await w.wait_for(job.id, JobStatus.RUNNING)
        started = time.monotonic()
        await asyncio.wait_for(w.worker.stop(grace=timedelta(milliseconds=200)), 10)
        stopped_in = time.monotonic() - started
    assert stopped_in < 5.0
    back = await (await app.backend()).get(job.id)
    assert back is not None and back.status is JobStatus.QUEUED and back.attempts == 0


async def test_graceful_shutdown_lets_jobs_finish_within_grace(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=config) as w:
        job = await t.wait_for_gate.enqueue_async(key=key)
        await until(lambda: t.SEEN.get(key) == "started")
        stopping = asyncio.create_task(w.worker.stop(grace=timedelta(seconds=10)))
        await asyncio.sleep(0.05)  # the stop is under way before the job may finish
        assert not stopping.done()
        t.gate(key).set()
        await stopping
    done = await (await app.backend()).get(job.id)
    assert done is not None and done.status is JobStatus.COMPLETED and done.result == "done"


async def test_cron_ticks_enqueued_once_with_three_workers(
    app: Conveyor, config: WorkerConfig, engine: str, engine_url: str
) -> None:
    for name in [k for k in t.CALLS if k.startswith("cron:")]:
        del t.CALLS[name]  # ticks are seconds: an earlier test may have run the same ones
    handles = []
    workers = []
    for i in range(3):
        if engine == "memory":
            backend = await app.backend()
        else:
            backend = open_backend(engine_url)
            await backend.open()
            handles.append(backend)
        cfg = replace(config, queues=("cron",), cron=True, worker_id=f"{config.worker_id}-{i}")
        workers.append(Worker(backend, registry=app.registry, config=cfg))
    runs = [asyncio.create_task(w.run()) for w in workers]
    store = await app.backend()

    async def cron_jobs() -> list[str]:
        page = await store.list_jobs(
            ListRequest(JobFilter(kinds=frozenset({t.every_second.name})), limit=100)
        )
        return [j.idempotency_key or "" for j in page.jobs if j.status is JobStatus.COMPLETED]

    try:
        deadline = time.monotonic() + 15
        while len(await cron_jobs()) < 3:
            assert time.monotonic() < deadline, "cron ticks were not run"
            assert not any(r.done() for r in runs), [r.result() for r in runs if r.done()]
            await asyncio.sleep(0.05)
    finally:
        for w in workers:
            w.request_stop()
        await asyncio.gather(*runs)
        for h in handles:
            await h.close()
    keys = await cron_jobs()
    assert len(keys) == len(set(keys))
    assert all(t.CALLS[f"cron:{k}"] == 1 for k in keys)


async def test_second_stop_request_is_immediate(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=replace(config, grace=timedelta(seconds=60))) as w:
        job = await t.wait_forever.enqueue_async(key=key)
        await w.wait_for(job.id, JobStatus.RUNNING)
        w.worker.request_stop()
        w.worker.request_stop()  # a second signal: do not wait out the minute
        started = time.monotonic()
        await w.wait_for(job.id, JobStatus.QUEUED)
    assert time.monotonic() - started < 5
