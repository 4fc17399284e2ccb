"""Races between processes, played with several backends (each its own pool) on one
database: idempotent enqueue, claims, and bounded queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from conveyor.backend import ClaimRequest, Completion, QueueSettings
from conveyor.backends.postgres import PostgresBackend
from conveyor.errors import QueueFull
from conveyor.jobs import NewJob, WorkerId

pytestmark = pytest.mark.postgres

HANDLES = 8


@pytest.fixture
async def handles(postgres_url: str) -> AsyncIterator[list[PostgresBackend]]:
    backends = [PostgresBackend(postgres_url, migrate=False, pool_max=4) for _ in range(HANDLES)]
    await asyncio.gather(*(b.open() for b in backends))
    try:
        yield backends
    finally:
        await asyncio.gather(*(b.close() for b in backends))


async def _count(url: str, where: str = "true") -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(f"SELECT count(*) FROM jobs WHERE {where}")  # type: ignore[arg-type]
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_concurrent_idempotent_enqueue_makes_one_job(
    handles: list[PostgresBackend], postgres_url: str
) -> None:
    async def enqueue(b: PostgresBackend, n: int) -> list[str]:
        out = await b.enqueue([NewJob(kind="k", payload={"n": n}, idempotency_key="same")] * 3)
        return [e.job.id for e in out if e.created] + [e.job.id for e in out]

    results = await asyncio.gather(*(enqueue(b, i) for i, b in enumerate(handles * 4)))
    ids = {job_id for r in results for job_id in r}
    assert len(ids) == 1
    created = [r for r in results if len(r) == 4]  # one created + three returned
    assert len(created) == 1
    assert await _count(postgres_url) == 1


async def test_concurrent_claims_never_share_a_job(
    handles: list[PostgresBackend], postgres_url: str
) -> None:
    total = 600
    await handles[0].enqueue([NewJob(kind="k", payload={"n": i}) for i in range(total)])
    seen: list[str] = []

    async def worker(b: PostgresBackend, name: str) -> None:
        while True:
            claimed = await b.claim(
                ClaimRequest(worker=WorkerId(name), queues=["default"], limit=7)
            )
            if not claimed:
                return
            seen.extend(c.job.id for c in claimed)
            lost = await b.complete([Completion(c.lease, result=name) for c in claimed])
            assert lost == []

    await asyncio.gather(*(worker(b, f"w{i}") for i, b in enumerate(handles)))
    assert len(seen) == total and len(set(seen)) == total
    assert await _count(postgres_url, "status = 'completed'") == total


async def test_bounded_queue_holds_under_concurrent_enqueue(
    handles: list[PostgresBackend], postgres_url: str
) -> None:
    await handles[0].configure_queue(QueueSettings(queue="bounded", max_depth=10))

    async def enqueue(b: PostgresBackend) -> int:
        try:
            out = await b.enqueue([NewJob(kind="k", queue="bounded")] * 1)
        except QueueFull:
            return 0
        return len(out)

    accepted = await asyncio.gather(*(enqueue(b) for b in handles * 4))
    assert sum(accepted) == 10
    assert await _count(postgres_url, "queue = 'bounded'") == 10
    # A refused batch stores nothing, not even the jobs that would have fitted elsewhere.
    with pytest.raises(QueueFull):
        await handles[1].enqueue(
            [NewJob(kind="k", queue="free"), NewJob(kind="k", queue="bounded")]
        )
    assert await _count(postgres_url, "queue = 'free'") == 0
