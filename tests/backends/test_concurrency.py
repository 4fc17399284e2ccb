"""Conformance: races between handles on the same store (each handle is what one process
would hold): rescue from every worker at once, many claimers for one job, and the queue depth
bound under concurrent enqueue."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from tests.backends.conftest import BackendFactory, claim_request, new_job

from conveyor.backend import Backend, Completion, ListRequest, QueueSettings
from conveyor.clock import FrozenClock
from conveyor.errors import QueueFull
from conveyor.jobs import JobStatus


async def test_concurrent_rescue_handles_each_job_once(
    backend: Backend, backend_factory: BackendFactory, clock: FrozenClock
) -> None:
    await backend.enqueue([new_job(max_attempts=5) for _ in range(30)])
    claimed = await backend.claim(claim_request(limit=30, lease_for=timedelta(seconds=10)))
    assert len(claimed) == 30
    clock.advance(timedelta(seconds=11))
    handles = [backend] + [await backend_factory() for _ in range(3)]
    outcomes = await asyncio.gather(*(h.rescue(limit=1000) for h in handles))
    counts = Counter(job_id for o in outcomes for job_id in o.requeued)
    assert set(counts) == {c.job.id for c in claimed}
    assert set(counts.values()) == {1}
    assert not any(o.failed or o.cancelled for o in outcomes)
    for c in claimed:
        job = await backend.get(c.job.id)
        assert job is not None and job.status is JobStatus.QUEUED
        assert job.rescues == 1 and len(job.errors) == 1


async def test_one_job_many_claimers(backend: Backend, backend_factory: BackendFactory) -> None:
    handles = [await backend_factory() for _ in range(8)]
    for _ in range(5):
        [enq] = await backend.enqueue([new_job()])
        results = await asyncio.gather(
            *(h.claim(claim_request(worker=f"w{i}", limit=2)) for i, h in enumerate(handles))
        )
        winners = [c for r in results for c in r]
        assert [c.job.id for c in winners] == [enq.job.id]


async def test_max_depth_holds_under_concurrent_enqueue(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    await backend.configure_queue(QueueSettings(queue="default", max_depth=10))
    other = await backend_factory()

    async def attempt(handle: Backend, i: int) -> bool:
        try:
            await handle.enqueue([new_job(payload={"i": i})])
        except QueueFull:
            return False
        return True

    accepted = await asyncio.gather(*(attempt(h, i) for i in range(15) for h in (backend, other)))
    assert sum(accepted) == 10
    page = await backend.list_jobs(ListRequest(limit=100))
    assert len(page.jobs) == 10


async def test_concurrent_complete_and_rescue_never_both_win(
    backend: Backend, backend_factory: BackendFactory, clock: FrozenClock
) -> None:
    """A completion racing the rescue of its expired lease: exactly one of them applies."""
    other = await backend_factory()
    await backend.enqueue([new_job(max_attempts=5) for _ in range(20)])
    claimed = await backend.claim(claim_request(limit=20, lease_for=timedelta(seconds=10)))
    clock.advance(timedelta(seconds=11))
    lost, rescued = await asyncio.gather(
        backend.complete([Completion(c.lease, result="done") for c in claimed]),
        other.rescue(limit=1000),
    )
    assert set(lost) == set(rescued.requeued)
    for c in claimed:
        job = await backend.get(c.job.id)
        assert job is not None
        if c.job.id in lost:
            assert job.status is JobStatus.QUEUED and job.result is None
        else:
            assert job.status is JobStatus.COMPLETED and job.result == "done"
            assert job.rescues == 0
