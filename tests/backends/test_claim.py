"""Conformance: claims (ordering, limits, paused queues, concurrency) and the lease they give."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from tests.backends.conftest import BackendFactory, claim_one, claim_request, enqueue_one, new_job

from conveyor.backend import Backend, ClaimedJob, QueueSettings
from conveyor.clock import FrozenClock
from conveyor.jobs import JobStatus


async def test_claim_sets_lease_and_attempt(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    clock.advance(timedelta(seconds=3))
    claimed = await claim_one(backend, worker="w-1", lease_for=timedelta(seconds=45))
    now = clock.now()
    assert claimed.job.id == job.id
    assert claimed.job.status is JobStatus.RUNNING
    assert claimed.job.attempts == 1 and claimed.job.attempt == 1
    assert claimed.job.started_at == now
    assert claimed.job.lease_owner == "w-1"
    assert claimed.job.lease_expires_at == now + timedelta(seconds=45)
    assert claimed.lease.job_id == job.id and claimed.lease.owner == "w-1"
    assert claimed.lease.attempt == 1 and claimed.token
    assert await backend.get(job.id) == claimed.job


async def test_claim_tokens_are_fresh(backend: Backend) -> None:
    await backend.enqueue([new_job(), new_job()])
    claimed = await backend.claim(claim_request(limit=2))
    assert len({c.token for c in claimed}) == 2


async def test_claim_empty(backend: Backend) -> None:
    assert await backend.claim(claim_request(limit=10)) == []


async def test_ordering_priority_then_run_at_then_fifo(
    backend: Backend, clock: FrozenClock
) -> None:
    [a1, a2, b] = [
        e.job
        for e in await backend.enqueue(
            [new_job(payload={"n": "a1"}), new_job(payload={"n": "a2"}), new_job(priority=5)]
        )
    ]
    c = await enqueue_one(backend, delay=timedelta(seconds=10))
    low = await enqueue_one(backend, priority=-3)
    clock.advance(timedelta(seconds=20))
    d = await enqueue_one(backend)  # run_at later than c's
    one_by_one = [(await claim_one(backend)).job.id for _ in range(6)]
    assert one_by_one == [b.id, a1.id, a2.id, c.id, d.id, low.id]


async def test_claim_batch_is_returned_in_claim_order(backend: Backend) -> None:
    """Decision: a batch comes back in Ordering order, so a worker starts the most urgent first."""
    out = await backend.enqueue(
        [new_job(priority=p, payload={"n": i}) for i, p in enumerate([0, 3, 0, 9, -2, 3])]
    )
    ids = [e.job.id for e in out]
    claimed = await backend.claim(claim_request(limit=6))
    assert [c.job.id for c in claimed] == [ids[3], ids[1], ids[5], ids[0], ids[2], ids[4]]


async def test_claim_limit_respected(backend: Backend) -> None:
    await backend.enqueue([new_job() for _ in range(7)])
    first = await backend.claim(claim_request(limit=3))
    second = await backend.claim(claim_request(limit=3))
    third = await backend.claim(claim_request(limit=3))
    assert [len(first), len(second), len(third)] == [3, 3, 1]
    ids = [c.job.id for c in first + second + third]
    assert len(set(ids)) == 7


async def test_claim_only_asked_queues(backend: Backend) -> None:
    await backend.enqueue([new_job(queue="a"), new_job(queue="b"), new_job(queue="c")])
    claimed = await backend.claim(claim_request(queues=("a", "c"), limit=10))
    assert sorted(c.job.queue for c in claimed) == ["a", "c"]


async def test_priority_across_queues(backend: Backend) -> None:
    await backend.enqueue([new_job(queue="a", priority=1), new_job(queue="b", priority=9)])
    claimed = await claim_one(backend, queues=("a", "b"))
    assert claimed.job.queue == "b"


async def test_paused_queue_not_claimed_until_resumed(backend: Backend) -> None:
    await backend.configure_queue(QueueSettings(queue="default", paused=True))
    job = await enqueue_one(backend)  # a paused queue still accepts jobs
    other = await enqueue_one(backend, queue="other")
    assert await backend.claim(claim_request(queues=("default",), limit=5)) == []
    assert (await claim_one(backend, queues=("default", "other"))).job.id == other.id
    await backend.configure_queue(QueueSettings(queue="default", paused=False))
    assert (await claim_one(backend)).job.id == job.id


async def test_running_and_final_jobs_are_not_claimed(backend: Backend) -> None:
    await enqueue_one(backend)
    await claim_one(backend)
    assert await backend.claim(claim_request(limit=5)) == []


async def test_no_job_claimed_twice_by_concurrent_claimers(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    total = 200
    await backend.enqueue([new_job(payload={"n": i}) for i in range(total)])
    handles = [await backend_factory() for _ in range(8)]

    async def drain(handle: Backend, worker: str) -> list[ClaimedJob]:
        got: list[ClaimedJob] = []
        while True:
            batch = await handle.claim(claim_request(worker=worker, limit=3))
            if not batch:
                return got
            assert len(batch) <= 3
            got.extend(batch)

    results = await asyncio.gather(*(drain(h, f"w{i}") for i, h in enumerate(handles)))
    counts = Counter(c.job.id for got in results for c in got)
    assert len(counts) == total
    assert set(counts.values()) == {1}
    for i, got in enumerate(results):
        assert all(c.lease.owner == f"w{i}" for c in got)


async def test_scheduled_job_claimable_from_scheduled_status(
    backend: Backend, clock: FrozenClock
) -> None:
    job = await enqueue_one(backend, delay=timedelta(seconds=5))
    clock.advance(timedelta(seconds=6))
    stored = await backend.get(job.id)
    assert stored is not None and stored.status in (JobStatus.SCHEDULED, JobStatus.QUEUED)
    claimed = await claim_one(backend)
    assert claimed.job.id == job.id and claimed.job.status is JobStatus.RUNNING
