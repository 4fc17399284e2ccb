"""Transactional enqueue (RELIABILITY.md promise 2): ``enqueue_in`` runs in the caller's
transaction; its jobs, and their NOTIFY, exist only once that transaction commits."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest

from conveyor.backend import Capability, ClaimRequest, QueueSettings
from conveyor.backends.postgres import PostgresBackend
from conveyor.errors import QueueFull
from conveyor.jobs import NewJob, WorkerId

pytestmark = pytest.mark.postgres


async def test_jobs_visible_only_after_commit(pg: PostgresBackend, postgres_url: str) -> None:
    assert Capability.TRANSACTIONAL_ENQUEUE in pg.capabilities
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        async with conn.transaction():
            await conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
            await conn.execute("INSERT INTO orders VALUES (1)")
            [enq] = await pg.enqueue_in(conn, [NewJob(kind="ship", payload={"order": 1})])
            assert enq.created
            assert await pg.get(enq.job.id) is None  # not visible outside the transaction
            claim = ClaimRequest(worker=WorkerId("w"), queues=["default"], limit=5)
            assert await pg.claim(claim) == []
        stored = await pg.get(enq.job.id)
        assert stored == enq.job
        [claimed] = await pg.claim(claim)
        assert claimed.job.id == enq.job.id


async def test_rollback_leaves_nothing(pg: PostgresBackend, postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                out = await pg.enqueue_in(conn, [NewJob(kind="k", idempotency_key="once")])
                raise RuntimeError("the business write failed")
    assert await pg.get(out[0].job.id) is None
    # The idempotency key was not taken by the rolled-back job.
    [again] = await pg.enqueue([NewJob(kind="k", idempotency_key="once")])
    assert again.created


async def test_notify_only_on_commit(pg: PostgresBackend, postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        async with conn.transaction():
            await pg.enqueue_in(conn, [NewJob(kind="k", queue="tx")])
            woken = await pg.wait_for_work(["tx"], timedelta(milliseconds=300))
            assert woken is False  # uncommitted: no notification yet
            waiter = asyncio.create_task(pg.wait_for_work(["tx"], timedelta(seconds=10)))
            await asyncio.sleep(0)
        assert await asyncio.wait_for(waiter, 10) is True


async def test_queue_full_keeps_the_callers_transaction_usable(
    pg: PostgresBackend, postgres_url: str
) -> None:
    await pg.configure_queue(QueueSettings(queue="small", max_depth=1))
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn, conn.transaction():
        await pg.enqueue_in(conn, [NewJob(kind="k", queue="small")])
        with pytest.raises(QueueFull) as info:
            await pg.enqueue_in(conn, [NewJob(kind="k", queue="small")])
        assert info.value.max_depth == 1 and info.value.queue == "small"
        # Still usable: the refusal rolled back a savepoint, not the transaction.
        await pg.enqueue_in(conn, [NewJob(kind="k", queue="other")])
    [stats_small] = [s for s in await pg.stats() if s.queue == "small"]
    [stats_other] = [s for s in await pg.stats() if s.queue == "other"]
    assert sum(stats_small.counts.values()) == 1 and sum(stats_other.counts.values()) == 1


async def test_implicit_transaction_of_a_non_autocommit_connection(
    pg: PostgresBackend, postgres_url: str
) -> None:
    """The first statement on a non-autocommit connection opens the caller's transaction;
    enqueue_in must join it, not commit on its own."""
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        [enq] = await pg.enqueue_in(conn, [NewJob(kind="k")])
        assert await pg.get(enq.job.id) is None
        await conn.rollback()
        assert await pg.get(enq.job.id) is None
        [kept] = await pg.enqueue_in(conn, [NewJob(kind="k")])
        await conn.commit()
        assert await pg.get(kept.job.id) == kept.job
