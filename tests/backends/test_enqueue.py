"""Conformance: enqueue, get, idempotency keys, scheduling and queue depth."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from tests.backends.conftest import BackendFactory, claim_one, claim_request, enqueue_one, new_job

from conveyor.backend import Backend, Completion, JobFilter, ListRequest, QueueSettings
from conveyor.clock import FrozenClock
from conveyor.errors import QueueFull
from conveyor.ids import new_job_id
from conveyor.jobs import JobStatus

PAYLOAD = {
    "text": 'héllo wörld ✓ 中文 🚀 "quoted" \\ back\nslash',
    "nested": {"list": [1, 2.5, True, False, None, "x"], "deep": {"empty": [], "obj": {}}},
    "big": 2**53,
    "negative": -17,
}


async def test_enqueue_get_round_trip_of_every_field(backend: Backend, clock: FrozenClock) -> None:
    job_id = new_job_id()
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    [enq] = await backend.enqueue(
        [
            new_job(
                kind="myapp.send_email",
                payload=PAYLOAD,
                queue="emails",
                priority=7,
                max_attempts=4,
                timeout=timedelta(seconds=90),
                idempotency_key="key-ü-1",
                trace=trace,
                id=job_id,
            )
        ]
    )
    assert enq.created
    job = await backend.get(job_id)
    assert job is not None
    assert job == enq.job
    now = clock.now()
    assert (job.id, job.queue, job.kind) == (job_id, "emails", "myapp.send_email")
    assert job.payload == PAYLOAD
    assert job.status is JobStatus.QUEUED
    assert (job.priority, job.max_attempts, job.attempts, job.rescues) == (7, 4, 0, 0)
    assert job.timeout == timedelta(seconds=90)
    assert job.idempotency_key == "key-ü-1"
    assert job.trace == trace
    assert job.run_at == now and job.created_at == now and job.updated_at == now
    assert job.lease_owner is None and job.lease_expires_at is None
    assert job.started_at is None and job.finished_at is None
    assert job.result is None and job.errors == () and job.progress is None
    assert job.cancel_requested is False


async def test_defaults_round_trip(backend: Backend) -> None:
    job = await enqueue_one(backend)
    stored = await backend.get(job.id)
    assert stored == job
    assert stored.queue == "default" and stored.payload == {}
    assert stored.timeout is None and stored.idempotency_key is None and stored.trace is None


async def test_get_unknown_is_none(backend: Backend) -> None:
    assert await backend.get(new_job_id()) is None


async def test_batch_enqueue_keeps_order(backend: Backend) -> None:
    jobs = [new_job(payload={"n": i}) for i in range(25)]
    out = await backend.enqueue(jobs)
    assert [e.job.payload["n"] for e in out] == list(range(25))
    assert all(e.created for e in out)
    assert len({e.job.id for e in out}) == 25
    claimed = [await claim_one(backend) for _ in range(25)]
    assert [c.job.payload["n"] for c in claimed] == list(range(25))  # FIFO = batch order


async def test_mixed_batch_stores_each_jobs_own_options(
    backend: Backend, clock: FrozenClock
) -> None:
    """One batch, no keys or ids (PostgreSQL's column-wise plain path), jobs whose options
    differ: each is stored with its own, and the returned jobs are what ``get`` reads."""
    now = clock.now()
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    jobs = [
        new_job(kind="a.one", payload=PAYLOAD, queue="q1"),
        new_job(kind="a.two", payload={"n": 2}, queue="q2", priority=5, max_attempts=7),
        new_job(kind="a.one", payload={"n": 3}, queue="q1", timeout=timedelta(seconds=3)),
        new_job(kind="a.one", payload={"n": 4}, queue="q1", delay=timedelta(minutes=5)),
        new_job(kind="a.one", payload={"n": 5}, queue="q1", run_at=now + timedelta(hours=1)),
        new_job(kind="a.one", payload={"n": 6}, queue="q1", trace=trace),
        new_job(kind="a.one", payload={"n": 7}, queue="q1"),  # same options as the first
    ]
    out = await backend.enqueue(jobs)
    assert [e.job.kind for e in out] == [j.kind for j in jobs] and all(e.created for e in out)
    for sent, enq in zip(jobs, out, strict=True):
        assert await backend.get(enq.job.id) == enq.job
        job = enq.job
        assert (job.queue, job.payload, job.priority) == (sent.queue, sent.payload, sent.priority)
        assert (job.max_attempts, job.timeout, job.trace) == (
            sent.max_attempts, sent.timeout, sent.trace
        )  # fmt: skip
    assert [e.job.status for e in out] == [JobStatus.QUEUED] * 3 + [JobStatus.SCHEDULED] * 2 + [
        JobStatus.QUEUED
    ] * 2
    assert out[3].job.run_at == now + timedelta(minutes=5)
    assert out[4].job.run_at == now + timedelta(hours=1)
    assert {e.job.run_at for i, e in enumerate(out) if i not in (3, 4)} == {now}
    for sent, batched in zip(jobs, out, strict=True):  # one at a time (PostgreSQL: enqueue_one)
        [alone] = await backend.enqueue([sent])
        assert await backend.get(alone.job.id) == alone.job
        assert replace(alone.job, id=batched.job.id) == batched.job


async def test_empty_batch(backend: Backend) -> None:
    assert await backend.enqueue([]) == []


async def test_queue_full_refuses_whole_batch(backend: Backend) -> None:
    await backend.configure_queue(QueueSettings(queue="small", max_depth=3))
    await backend.enqueue([new_job(queue="small", payload={"n": 1})])
    batch = [new_job(queue="other")] + [new_job(queue="small", payload={"n": i}) for i in range(3)]
    with pytest.raises(QueueFull) as info:
        await backend.enqueue(batch)
    assert info.value.queue == "small" and info.value.max_depth == 3
    assert info.value.retry_after > timedelta(0)
    page = await backend.list_jobs(ListRequest())
    assert [j.queue for j in page.jobs] == ["small"]  # nothing of the refused batch was stored


async def test_max_depth_counts_waiting_jobs_only(backend: Backend) -> None:
    await backend.configure_queue(QueueSettings(queue="default", max_depth=2))
    await backend.enqueue([new_job(), new_job(delay=timedelta(minutes=5))])
    with pytest.raises(QueueFull):
        await enqueue_one(backend)
    claimed = await claim_one(backend)  # running jobs do not count towards the depth
    await enqueue_one(backend)
    with pytest.raises(QueueFull):
        await enqueue_one(backend)
    assert claimed.job.status is JobStatus.RUNNING


async def test_max_depth_exactly_reached_is_accepted(backend: Backend) -> None:
    await backend.configure_queue(QueueSettings(queue="default", max_depth=3))
    out = await backend.enqueue([new_job() for _ in range(3)])
    assert len(out) == 3


async def test_idempotency_key_returns_first_job(backend: Backend, clock: FrozenClock) -> None:
    first = await enqueue_one(backend, idempotency_key="once", payload={"v": 1})
    clock.advance(timedelta(seconds=5))
    [again] = await backend.enqueue([new_job(idempotency_key="once", payload={"v": 2})])
    assert not again.created
    assert again.job == await backend.get(first.id)
    assert again.job.payload == {"v": 1}


async def test_idempotency_key_holds_in_any_status(backend: Backend) -> None:
    job = await enqueue_one(backend, idempotency_key="k")
    claimed = await claim_one(backend)
    assert await backend.complete([Completion(claimed.lease)]) == []
    [again] = await backend.enqueue([new_job(idempotency_key="k")])
    assert not again.created and again.job.id == job.id
    assert again.job.status is JobStatus.COMPLETED


async def test_idempotency_key_within_one_batch(backend: Backend) -> None:
    out = await backend.enqueue(
        [new_job(idempotency_key="dup"), new_job(), new_job(idempotency_key="dup")]
    )
    assert [e.created for e in out] == [True, True, False]
    assert out[2].job.id == out[0].job.id
    page = await backend.list_jobs(ListRequest())
    assert len(page.jobs) == 2


async def test_idempotent_duplicate_does_not_count_towards_depth(backend: Backend) -> None:
    await backend.configure_queue(QueueSettings(queue="default", max_depth=1))
    await enqueue_one(backend, idempotency_key="k")
    [again] = await backend.enqueue([new_job(idempotency_key="k")])
    assert not again.created


async def test_concurrent_enqueue_same_key_two_handles(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    other = await backend_factory()
    calls = [
        handle.enqueue([new_job(idempotency_key="race", payload={"i": i})])
        for i in range(20)
        for handle in (backend, other)
    ]
    results = [out[0] for out in await asyncio.gather(*calls)]
    assert sum(r.created for r in results) == 1
    assert len({r.job.id for r in results}) == 1
    page = await backend.list_jobs(ListRequest())
    assert len(page.jobs) == 1


async def test_periodic_ticks_dedupe_across_handles(
    backend: Backend, backend_factory: BackendFactory, clock: FrozenClock
) -> None:
    """Several schedulers enqueue the same cron tick: one job per tick (river#283)."""
    handles = [backend, await backend_factory(), await backend_factory()]
    for tick in range(5):
        key = f"cron:report:{tick}"
        outs = await asyncio.gather(
            *(h.enqueue([new_job(kind="report", idempotency_key=key)]) for h in handles)
        )
        assert sum(o[0].created for o in outs) == 1
        clock.advance(timedelta(minutes=1))
    page = await backend.list_jobs(ListRequest(filter=JobFilter(kinds=frozenset({"report"}))))
    assert sorted(j.idempotency_key or "" for j in page.jobs) == [
        f"cron:report:{t}" for t in range(5)
    ]


async def test_known_id_is_idempotent(backend: Backend) -> None:
    """Decision: enqueueing an id that is already stored returns that job, created=False."""
    job_id = new_job_id()
    [first] = await backend.enqueue([new_job(id=job_id, payload={"v": 1})])
    [second] = await backend.enqueue([new_job(id=job_id, payload={"v": 2})])
    assert first.created and not second.created
    assert second.job.payload == {"v": 1}


async def test_delay_schedules_relative_to_backend_clock(
    backend: Backend, clock: FrozenClock
) -> None:
    job = await enqueue_one(backend, delay=timedelta(seconds=10))
    assert job.status is JobStatus.SCHEDULED
    assert job.run_at == clock.now() + timedelta(seconds=10)
    assert await backend.claim(claim_request()) == []
    clock.advance(timedelta(seconds=9))
    assert await backend.claim(claim_request()) == []
    clock.advance(timedelta(seconds=1))
    claimed = await claim_one(backend)
    assert claimed.job.id == job.id and claimed.job.attempts == 1


async def test_run_at_in_future_is_scheduled(backend: Backend, clock: FrozenClock) -> None:
    due = clock.now() + timedelta(hours=1)
    job = await enqueue_one(backend, run_at=due)
    assert job.status is JobStatus.SCHEDULED and job.run_at == due
    clock.advance(timedelta(minutes=59))
    assert await backend.claim(claim_request()) == []
    clock.advance(timedelta(minutes=1))
    assert (await claim_one(backend)).job.id == job.id


async def test_run_at_in_past_is_queued_now(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, run_at=clock.now() - timedelta(hours=1))
    assert job.status is JobStatus.QUEUED
    assert job.run_at == clock.now()
    assert (await claim_one(backend)).job.id == job.id


async def test_zero_delay_is_queued(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, delay=timedelta(0))
    assert job.status is JobStatus.QUEUED and job.run_at == clock.now()
