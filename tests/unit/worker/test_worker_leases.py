"""Lease loss, on engines that take an injected clock (memory, sqlite): a worker whose lease
was rescued never writes its outcome, whether it learns it from a renew (the handler is
cancelled) or from a refused completion; the rescued attempt runs again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from conveyor import Conveyor, FrozenClock, JobContext, JobStatus
from conveyor.events import LeaseLostEvent
from conveyor.testing import TEST_CONFIG, run_worker
from conveyor.worker import WorkerConfig

ENGINES = [
    pytest.param("memory", marks=pytest.mark.memory),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
]


@pytest.fixture(params=ENGINES)
async def clocked(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Conveyor, FrozenClock]]:
    clock = FrozenClock()
    app = Conveyor(request.getfixturevalue(f"{request.param}_url"), clock=clock)
    yield app, clock
    await app.aclose()


def config(lease: timedelta) -> WorkerConfig:
    return WorkerConfig(
        lease=lease,
        poll_interval=timedelta(milliseconds=30),
        rescue_interval=timedelta(hours=1),  # the test rescues by hand
        cron=False,
        retention=None,
        grace=TEST_CONFIG.grace,
    )


async def test_lost_on_renew_cancels_handler_and_writes_nothing(
    clocked: tuple[Conveyor, FrozenClock],
) -> None:
    app, clock = clocked
    seen: list[str] = []
    release = asyncio.Event()

    @app.task
    async def slow(ctx: JobContext) -> str:
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                seen.append(f"cancelled:{ctx.is_cancelled}")
                raise
        await release.wait()
        return "second"

    async with run_worker(app, config=config(timedelta(milliseconds=600))) as w:
        job = await slow.enqueue_async()
        await w.wait_for(job.id, JobStatus.RUNNING)
        clock.advance(timedelta(seconds=5))
        rescued = await w.backend.rescue()
        assert rescued.requeued == (job.id,)
        await w.wait_for_event(LeaseLostEvent, lambda e: e.job_id == job.id and e.attempt == 1)
        release.set()
        done = await w.wait_for(job.id)
    assert seen == ["cancelled:True"]
    assert done.status is JobStatus.COMPLETED and done.result == "second" and done.attempts == 2
    assert [e.type for e in done.errors] == ["conveyor.LeaseExpired"]


async def test_lost_at_completion_is_not_written(clocked: tuple[Conveyor, FrozenClock]) -> None:
    app, clock = clocked
    gates = {1: asyncio.Event(), 2: asyncio.Event()}

    @app.task
    async def slow(ctx: JobContext) -> int:
        await gates[ctx.attempt].wait()
        return int(ctx.attempt)

    async with run_worker(app, config=config(timedelta(hours=1))) as w:
        job = await slow.enqueue_async()
        await w.wait_for(job.id, JobStatus.RUNNING)
        clock.advance(timedelta(hours=2))
        await w.backend.rescue()
        second = await w.wait_for(job.id, JobStatus.RUNNING)
        assert second.attempts == 2
        gates[1].set()  # the stale attempt finishes first: its completion must be refused
        await w.wait_for_event(LeaseLostEvent, lambda e: e.job_id == job.id and e.attempt == 1)
        assert (await w.backend.get(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
        gates[2].set()
        done = await w.wait_for(job.id)
    assert done.status is JobStatus.COMPLETED and done.result == 2
