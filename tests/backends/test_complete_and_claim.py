"""Conformance: ``complete_and_claim``, the worker's hot-loop call: it is exactly
``complete`` followed by ``claim``, in one call."""

from __future__ import annotations

from datetime import timedelta

from tests.backends.conftest import claim_one, claim_request, enqueue_one, new_job

from conveyor.backend import Backend, Completion, Lease, QueueSettings
from conveyor.clock import FrozenClock
from conveyor.jobs import JobId, JobStatus


async def test_completes_then_claims(backend: Backend, clock: FrozenClock) -> None:
    await enqueue_one(backend)
    first = await claim_one(backend, worker="w-1")
    waiting = [e.job for e in await backend.enqueue([new_job(), new_job(), new_job()])]
    clock.advance(timedelta(seconds=2))
    lost, claimed = await backend.complete_and_claim(
        [Completion(first.lease, {"n": 1})], claim_request("w-1", limit=2)
    )
    assert lost == []
    done = await backend.get(first.job.id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.result == {"n": 1} and done.finished_at == clock.now()
    assert done.lease_owner is None
    assert [c.job.id for c in claimed] == [waiting[0].id, waiting[1].id]
    for c in claimed:
        assert c.job.status is JobStatus.RUNNING and c.job.started_at == clock.now()
        assert c.lease.owner == "w-1" and c.lease.attempt == 1 and c.token
        assert await backend.get(c.job.id) == c.job
    third = await backend.get(waiting[2].id)
    assert third is not None and third.status is JobStatus.QUEUED


async def test_stale_lease_is_lost_and_claim_still_happens(backend: Backend) -> None:
    await enqueue_one(backend)
    held = await claim_one(backend)
    await enqueue_one(backend)
    stale = Lease(held.lease.job_id, held.lease.owner, "not-the-token", held.lease.attempt)
    ghost = Lease(JobId("no-such-job"), held.lease.owner, "t", 1)
    lost, claimed = await backend.complete_and_claim(
        [Completion(stale), Completion(ghost)], claim_request(limit=5)
    )
    assert sorted(lost) == sorted([held.job.id, JobId("no-such-job")])
    assert len(claimed) == 1
    still = await backend.get(held.job.id)
    assert still is not None and still.status is JobStatus.RUNNING


async def test_without_completions_it_is_a_claim(backend: Backend) -> None:
    job = await enqueue_one(backend)
    lost, claimed = await backend.complete_and_claim([], claim_request(limit=3))
    assert lost == [] and [c.job.id for c in claimed] == [job.id]
    assert await backend.complete_and_claim([], claim_request(limit=3)) == ([], [])


async def test_with_no_limit_it_is_a_complete(backend: Backend) -> None:
    await enqueue_one(backend)
    held = await claim_one(backend)
    waiting = await enqueue_one(backend)
    lost, claimed = await backend.complete_and_claim(
        [Completion(held.lease)], claim_request(limit=0)
    )
    assert lost == [] and claimed == []
    done = await backend.get(held.job.id)
    assert done is not None and done.status is JobStatus.COMPLETED
    untouched = await backend.get(waiting.id)
    assert untouched is not None and untouched.status is JobStatus.QUEUED


async def test_a_completed_job_is_never_claimed_again(backend: Backend) -> None:
    """The completed job and the claimable ones are disjoint, even in one call."""
    jobs = [e.job for e in await backend.enqueue([new_job() for _ in range(4)])]
    batch = await backend.claim(claim_request(limit=2))
    lost, claimed = await backend.complete_and_claim(
        [Completion(c.lease) for c in batch], claim_request(limit=10)
    )
    assert lost == []
    assert sorted(c.job.id for c in claimed) == sorted(j.id for j in jobs[2:])
    stats = await backend.stats()
    [default] = [s for s in stats if s.queue == "default"]
    assert default.counts.get(JobStatus.COMPLETED) == 2
    assert default.counts.get(JobStatus.RUNNING) == 2


async def test_paused_queue_completes_but_does_not_claim(backend: Backend) -> None:
    await enqueue_one(backend)
    held = await claim_one(backend)
    await enqueue_one(backend)
    await backend.configure_queue(QueueSettings("default", paused=True))
    lost, claimed = await backend.complete_and_claim(
        [Completion(held.lease)], claim_request(limit=4)
    )
    assert lost == [] and claimed == []
    done = await backend.get(held.job.id)
    assert done is not None and done.status is JobStatus.COMPLETED
