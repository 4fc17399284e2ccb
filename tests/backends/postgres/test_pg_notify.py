"""LISTEN/NOTIFY wake-ups: enqueue, release and rescue wake waiters of the right queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from conveyor.backend import Capability, ClaimRequest
from conveyor.backends.postgres import PostgresBackend
from conveyor.clock import FrozenClock
from conveyor.jobs import NewJob, WorkerId

pytestmark = pytest.mark.postgres

LONG = timedelta(seconds=10)


async def listening(pg: PostgresBackend) -> None:
    """A backend listens from its first wait on (one that only enqueues never does): a
    zero-length wait starts it, so that a waiter is registered before the action runs."""
    await pg.wait_for_work(["default"], timedelta(0))
    assert pg.listener.connected.is_set()


async def _woken_by(pg: PostgresBackend, queues: list[str], action: object) -> bool:
    await listening(pg)
    waiter = asyncio.create_task(pg.wait_for_work(queues, LONG))
    await asyncio.sleep(0)  # registered before the action runs
    await action  # type: ignore[misc]
    return await asyncio.wait_for(waiter, LONG.total_seconds() + 5)


async def test_enqueue_from_another_process_wakes(pg: PostgresBackend, postgres_url: str) -> None:
    assert Capability.NOTIFY in pg.capabilities
    other = PostgresBackend(postgres_url, migrate=False)
    await other.open()
    try:
        assert await _woken_by(pg, ["mail"], other.enqueue([NewJob(kind="k", queue="mail")]))
    finally:
        await other.close()


async def test_a_backend_that_only_enqueues_does_not_listen(postgres_url: str) -> None:
    # Else every enqueue anywhere would wake every API process and client (a notification
    # delivered to each listening connection).
    client = PostgresBackend(postgres_url, migrate=False)
    await client.open()
    try:
        await client.enqueue([NewJob(kind="k")])
        [claimed] = await client.claim(ClaimRequest(WorkerId("w"), ["default"], limit=1))
        await client.release([claimed.lease])
        assert client.listener.connections == 0 and not client.listener.connected.is_set()
        assert await client.wait_for_work(["default"], timedelta(0)) is False
        assert client.listener.connections == 1
    finally:
        await client.close()


async def test_other_queue_does_not_wake(pg: PostgresBackend) -> None:
    await listening(pg)
    waiter = asyncio.create_task(pg.wait_for_work(["a"], timedelta(milliseconds=400)))
    await asyncio.sleep(0)
    await pg.enqueue([NewJob(kind="k", queue="b")])
    assert await waiter is False


async def test_scheduled_job_does_not_wake(pg: PostgresBackend) -> None:
    await listening(pg)
    waiter = asyncio.create_task(pg.wait_for_work(["default"], timedelta(milliseconds=400)))
    await asyncio.sleep(0)
    await pg.enqueue([NewJob(kind="k", delay=timedelta(hours=1))])
    assert await waiter is False


async def test_release_wakes(pg: PostgresBackend) -> None:
    await pg.enqueue([NewJob(kind="k")])
    [claimed] = await pg.claim(ClaimRequest(worker=WorkerId("w"), queues=["default"], limit=1))
    assert await _woken_by(pg, ["default"], pg.release([claimed.lease]))


async def test_rescue_wakes(postgres_url: str) -> None:
    clock = FrozenClock()
    pg = PostgresBackend(postgres_url, clock=clock, migrate=False)
    await pg.open()
    try:
        await pg.enqueue([NewJob(kind="k")])
        claim = ClaimRequest(worker=WorkerId("w"), queues=["default"], limit=1)
        [claimed] = await pg.claim(claim)
        clock.advance(timedelta(minutes=5))
        assert await _woken_by(pg, ["default"], pg.rescue())
        [again] = await pg.claim(claim)
        assert again.job.id == claimed.job.id and again.token != claimed.token
    finally:
        await pg.close()


async def test_long_queue_name_wakes_everyone(pg: PostgresBackend) -> None:
    name = "q" * 2000  # too long for a NOTIFY payload: the wildcard is sent instead
    assert await _woken_by(pg, ["x"], pg.enqueue([NewJob(kind="k", queue=name)]))
