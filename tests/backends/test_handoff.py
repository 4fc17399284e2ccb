"""Conformance: standing claims (``ClaimRequest.standby`` + ``wait_for_handoff``).

On engines with ``Capability.HANDOFF`` a claim that finds fewer jobs than its limit leaves a
standing claim for one job; the next write that makes a job ready in its queues claims the
best ready job for it, and ``wait_for_handoff`` returns that job. Every engine, with or
without the capability, keeps the claim rules: ordering, paused queues, one job per claim,
no job handed twice, nothing left registered after the wait.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from tests.backends.conftest import BackendFactory, claim_one, enqueue_one, new_job

from conveyor.backend import Backend, Capability, ClaimRequest, Completion, QueueSettings
from conveyor.clock import FrozenClock
from conveyor.jobs import JobStatus, WorkerId

SHORT = timedelta(milliseconds=50)
LONG = timedelta(seconds=5)


def standing(
    token: str,
    worker: str = "w",
    queues: tuple[str, ...] = ("default",),
    standby_for: timedelta = timedelta(seconds=10),
) -> ClaimRequest:
    return ClaimRequest(WorkerId(worker), queues, limit=1, standby=token, standby_for=standby_for)


def handoff(backend: Backend) -> bool:
    return Capability.HANDOFF in backend.capabilities


async def stand_by(backend: Backend, request: ClaimRequest) -> None:
    """Claim with a standby token on an empty queue: nothing claimed."""
    assert await backend.claim(request) == []


async def status_of(backend: Backend, job_id: str) -> JobStatus:
    job = await backend.get(job_id)  # type: ignore[arg-type]
    assert job is not None
    return job.status


async def counts(backend: Backend, queue: str = "default") -> dict[JobStatus, int]:
    [stats] = [s for s in await backend.stats() if s.queue == queue]
    return stats.counts


async def test_an_enqueued_job_is_handed_to_the_standing_claim(
    backend: Backend, clock: FrozenClock
) -> None:
    await stand_by(backend, standing("sb-1", worker="w-1"))
    waiting = asyncio.ensure_future(backend.wait_for_handoff("sb-1", ("default",), LONG))
    await asyncio.sleep(0.05)
    job = await enqueue_one(backend)
    if not handoff(backend):
        assert await waiting == []
        assert await status_of(backend, job.id) is JobStatus.QUEUED
        return
    [got] = await asyncio.wait_for(waiting, 2)
    assert got.job.id == job.id and got.job.status is JobStatus.RUNNING
    assert got.job.attempts == 1 and got.job.started_at == clock.now()
    assert got.lease.owner == "w-1" and got.lease.attempt == 1 and got.token
    assert got.job.lease_expires_at == clock.now() + timedelta(seconds=30)
    assert await backend.get(job.id) == got.job
    assert (await counts(backend))[JobStatus.RUNNING] == 1
    assert (await counts(backend))[JobStatus.QUEUED] == 0
    assert await backend.complete_and_claim([], ClaimRequest(WorkerId("w-2"), ("default",), 5)) == (
        [],
        [],
    )
    # The lease is a normal one: it completes.
    assert await backend.complete([Completion(got.lease, {"ok": True})]) == []
    assert await status_of(backend, job.id) is JobStatus.COMPLETED


async def test_a_standing_claim_takes_one_job_the_best_ready(backend: Backend) -> None:
    await stand_by(backend, standing("sb-1"))
    low, high, mid = [
        e.job
        for e in await backend.enqueue(
            [new_job(priority=0), new_job(priority=9), new_job(priority=5)]
        )
    ]
    got = await backend.wait_for_handoff("sb-1", ("default",), SHORT)
    rest = await backend.claim(ClaimRequest(WorkerId("w"), ("default",), 5))
    if handoff(backend):
        assert [c.job.id for c in got] == [high.id]
        assert [c.job.id for c in rest] == [mid.id, low.id]
    else:
        assert got == [] and [c.job.id for c in rest] == [high.id, mid.id, low.id]


async def test_standing_claims_take_turns_and_never_share_a_job(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    other = await backend_factory()
    await stand_by(backend, standing("sb-a", worker="a"))
    await stand_by(other, standing("sb-b", worker="b"))
    jobs = [e.job for e in await backend.enqueue([new_job(), new_job(), new_job()])]
    got_a = await backend.wait_for_handoff("sb-a", ("default",), SHORT)
    got_b = await other.wait_for_handoff("sb-b", ("default",), SHORT)
    if not handoff(backend):
        assert got_a == got_b == []
        return
    assert [c.job.id for c in got_a] == [jobs[0].id] and got_a[0].lease.owner == "a"
    assert [c.job.id for c in got_b] == [jobs[1].id] and got_b[0].lease.owner == "b"
    assert await status_of(backend, jobs[2].id) is JobStatus.QUEUED


async def test_a_paused_queue_hands_nothing(backend: Backend) -> None:
    await backend.configure_queue(QueueSettings("default", paused=True))
    await stand_by(backend, standing("sb-1"))
    job = await enqueue_one(backend)
    assert await backend.wait_for_handoff("sb-1", ("default",), SHORT) == []
    assert await status_of(backend, job.id) is JobStatus.QUEUED
    await backend.configure_queue(QueueSettings("default", paused=False))
    assert (await claim_one(backend)).job.id == job.id


async def test_a_single_enqueue_hands_over_the_job_ready_before_it(backend: Backend) -> None:
    # A job left ready (its queue was paused) is better than the one enqueued now: the
    # standing claim gets it, even though the write that hands it over stores the other.
    await stand_by(backend, standing("sb-1"))
    await backend.configure_queue(QueueSettings("default", paused=True))
    [best] = [e.job for e in await backend.enqueue([new_job(priority=9)])]
    await backend.configure_queue(QueueSettings("default", paused=False))
    [newer] = [e.job for e in await backend.enqueue([new_job(priority=0)])]
    got = await backend.wait_for_handoff("sb-1", ("default",), SHORT)
    if handoff(backend):
        assert [c.job.id for c in got] == [best.id]
        assert await status_of(backend, newer.id) is JobStatus.QUEUED
    else:
        assert got == []
    assert [
        c.job.id for c in await backend.claim(ClaimRequest(WorkerId("w"), ("default",), 5))
    ] == ([newer.id] if handoff(backend) else [best.id, newer.id])


async def test_after_the_wait_nothing_stays_registered(backend: Backend) -> None:
    await stand_by(backend, standing("sb-1"))
    assert await backend.wait_for_handoff("sb-1", ("default",), SHORT) == []
    job = await enqueue_one(backend)
    assert await status_of(backend, job.id) is JobStatus.QUEUED
    assert (await claim_one(backend)).job.id == job.id


async def test_withdrawing_returns_a_job_handed_meanwhile(backend: Backend) -> None:
    await stand_by(backend, standing("sb-1"))
    job = await enqueue_one(backend)
    got = await backend.wait_for_handoff("sb-1", ("default",), timedelta(0))
    if handoff(backend):
        assert [c.job.id for c in got] == [job.id]
        assert await status_of(backend, job.id) is JobStatus.RUNNING
    else:
        assert got == [] and await status_of(backend, job.id) is JobStatus.QUEUED
    second = await enqueue_one(backend)
    assert await status_of(backend, second.id) is JobStatus.QUEUED


async def test_a_claim_that_fills_its_limit_registers_nothing(backend: Backend) -> None:
    first = await enqueue_one(backend)
    [claimed] = await backend.claim(standing("sb-1"))
    assert claimed.job.id == first.id
    second = await enqueue_one(backend)
    assert await status_of(backend, second.id) is JobStatus.QUEUED


async def test_an_expired_standing_claim_is_skipped(backend: Backend) -> None:
    # A worker that died standing by: its claim expires (real time) and takes nothing.
    await stand_by(backend, standing("sb-dead", standby_for=timedelta(milliseconds=20)))
    await stand_by(backend, standing("sb-live", worker="live"))
    await asyncio.sleep(0.1)
    job = await enqueue_one(backend)
    got = await backend.wait_for_handoff("sb-live", ("default",), SHORT)
    if handoff(backend):
        assert [c.job.id for c in got] == [job.id] and got[0].lease.owner == "live"
    else:
        assert got == []
    assert await backend.wait_for_handoff("sb-dead", ("default",), timedelta(0)) == []


async def test_a_standing_claim_covers_each_of_its_queues_once(backend: Backend) -> None:
    await stand_by(backend, standing("sb-1", queues=("a", "b")))
    in_b = await enqueue_one(backend, queue="b")
    in_a = await enqueue_one(backend, queue="a")
    got = await backend.wait_for_handoff("sb-1", ("a", "b"), SHORT)
    if handoff(backend):
        assert [c.job.id for c in got] == [in_b.id]
        assert await status_of(backend, in_a.id) is JobStatus.QUEUED
    else:
        assert got == []


async def test_a_released_job_is_handed_on(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    job = await enqueue_one(backend)
    held = await claim_one(backend, worker="leaving")
    other = await backend_factory()
    await stand_by(other, standing("sb-1", worker="staying"))
    assert await backend.release([held.lease]) == []
    got = await other.wait_for_handoff("sb-1", ("default",), SHORT)
    if handoff(backend):
        assert [c.job.id for c in got] == [job.id] and got[0].lease.owner == "staying"
        assert got[0].lease.attempt == 1  # the released attempt was given back
    else:
        assert got == [] and await status_of(backend, job.id) is JobStatus.QUEUED


async def test_a_due_scheduled_job_is_handed_before_a_newer_one(
    backend: Backend, clock: FrozenClock
) -> None:
    due = await enqueue_one(backend, delay=timedelta(seconds=1), priority=5)
    await stand_by(backend, standing("sb-1"))
    clock.advance(timedelta(seconds=2))
    newer = await enqueue_one(backend, priority=0)
    got = await backend.wait_for_handoff("sb-1", ("default",), SHORT)
    if handoff(backend):
        assert [c.job.id for c in got] == [due.id]
        assert (await counts(backend))[JobStatus.SCHEDULED] == 0
        assert (await counts(backend))[JobStatus.RUNNING] == 1
    else:
        assert got == []
        rest = await backend.claim(ClaimRequest(WorkerId("w"), ("default",), 5))
        assert [c.job.id for c in rest] == [due.id, newer.id]


async def test_cancelling_the_wait_gives_back_a_handed_job(backend: Backend) -> None:
    await stand_by(backend, standing("sb-1"))
    job = await enqueue_one(backend)  # handed before the wait even began
    waiting = asyncio.ensure_future(backend.wait_for_handoff("sb-1", ("default",), LONG))
    await asyncio.sleep(0)  # the wait has started
    waiting.cancel()
    try:
        got = await waiting
    except asyncio.CancelledError:
        got = None
    if got:
        # The wait ended (the job's wake-up won the race with the cancel, which asyncio's
        # wait_for then drops): the caller holds the job and gives it back itself.
        assert [c.job.id for c in got] == [job.id]
        assert await backend.release([got[0].lease]) == []
    else:
        assert got is None or not handoff(backend)
    stored = await backend.get(job.id)
    assert stored is not None and stored.status is JobStatus.QUEUED
    assert stored.attempts == 0 and stored.lease_owner is None
    [claimed] = await backend.claim(ClaimRequest(WorkerId("w"), ("default",), 2))
    assert claimed.job.id == job.id and claimed.lease.attempt == 1
    later = await enqueue_one(backend)
    assert await status_of(backend, later.id) is JobStatus.QUEUED


async def test_withdrawing_ends_a_wait_under_way(backend: Backend) -> None:
    await stand_by(backend, standing("sb-1"))
    waiting = asyncio.ensure_future(backend.wait_for_handoff("sb-1", ("default",), LONG))
    await asyncio.sleep(0.05)
    assert await backend.wait_for_handoff("sb-1", ("default",), timedelta(0)) == []
    if handoff(backend):  # the stop path of a worker: its wait returns at once
        assert await asyncio.wait_for(waiting, 1) == []
    else:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    job = await enqueue_one(backend)
    assert await status_of(backend, job.id) is JobStatus.QUEUED


@pytest.mark.parametrize("size", [10, 20_000], ids=["small", "bigger-than-a-notification"])
async def test_a_handed_job_is_the_stored_job_field_for_field(
    backend: Backend, clock: FrozenClock, size: int
) -> None:
    await stand_by(backend, standing("sb-1", worker="w-9"))
    waiting = asyncio.ensure_future(backend.wait_for_handoff("sb-1", ("default",), LONG))
    await asyncio.sleep(0.05)
    job = await enqueue_one(
        backend,
        payload={"text": "x" * size, "nested": {"n": [1, 2.5, None, True]}, "é": "ü"},
        priority=7,
        max_attempts=4,
        timeout=timedelta(seconds=90, microseconds=5),
        idempotency_key="key-é",
        trace="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    got = await asyncio.wait_for(waiting, 5)
    stored = await backend.get(job.id)
    if not handoff(backend):
        assert got == [] and stored is not None and stored.status is JobStatus.QUEUED
        return
    [handed] = got
    assert handed.job == stored
    assert handed.job.timeout == timedelta(seconds=90, microseconds=5)
    assert handed.job.started_at == clock.now() and handed.lease.owner == "w-9"
    assert await backend.complete([Completion(handed.lease, {"ok": 1})]) == []


async def test_a_withdrawal_after_the_wait_returned_its_job_collects_nothing(
    backend: Backend,
) -> None:
    # A stop that withdraws the claim just after the wait returned the handed job (before
    # any background clean-up of the claim has landed) must not get the job a second time.
    await stand_by(backend, standing("sb-1"))
    waiting = asyncio.ensure_future(backend.wait_for_handoff("sb-1", ("default",), LONG))
    await asyncio.sleep(0.02)
    job = await enqueue_one(backend)
    delivered = await asyncio.wait_for(waiting, LONG.total_seconds())
    withdrawn = await backend.wait_for_handoff("sb-1", ("default",), timedelta(0))
    assert withdrawn == []
    if not handoff(backend):
        assert delivered == [] and await status_of(backend, job.id) is JobStatus.QUEUED
        return
    assert [c.job.id for c in delivered] == [job.id]
    assert await backend.complete([Completion(delivered[0].lease)]) == []


@pytest.mark.parametrize("pause", [0.0, 0.001, 0.003, 0.01])
async def test_a_job_handed_around_a_withdrawal_is_delivered_once(
    backend: Backend, pause: float
) -> None:
    # A stop withdraws the claim while the handoff may be on its way to the wait: the job
    # must come back from exactly one of the two calls (or stay queued on other engines).
    await stand_by(backend, standing("sb-1"))
    waiting = asyncio.ensure_future(backend.wait_for_handoff("sb-1", ("default",), LONG))
    await asyncio.sleep(0.02)
    job = await enqueue_one(backend)
    await asyncio.sleep(pause)
    withdrawn = await backend.wait_for_handoff("sb-1", ("default",), timedelta(0))
    if not handoff(backend):
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert withdrawn == [] and await status_of(backend, job.id) is JobStatus.QUEUED
        return
    delivered = withdrawn + await asyncio.wait_for(waiting, 2)
    assert [c.job.id for c in delivered] == [job.id]
    assert await backend.complete([Completion(delivered[0].lease)]) == []
