"""Conformance: how attempts end (fail, retry, discard, release) and the admin verbs that act
on jobs from outside (cancel, requeue)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.backends.conftest import claim_one, claim_request, enqueue_one

from conveyor.backend import (
    Backend,
    FailRequest,
    JobFilter,
    RequeueRequest,
    complete_one,
)
from conveyor.clock import FrozenClock
from conveyor.errors import InvalidTransition, JobNotFound
from conveyor.ids import new_job_id
from conveyor.jobs import AttemptError, Job, JobId, JobStatus

LEASE = timedelta(seconds=30)


def error_for(attempt: int, clock: FrozenClock, message: str = "boom") -> AttemptError:
    return AttemptError(
        attempt=attempt,
        at=clock.now(),
        type="builtins.ValueError",
        message=message,
        traceback="Traceback (most recent call last):\n  ...\nValueError: boom\n",
        details={"status": 503, "host": "example.com"},
    )


async def stored(backend: Backend, job_id: JobId) -> Job:
    job = await backend.get(job_id)
    assert job is not None
    return job


async def failed_job(backend: Backend, clock: FrozenClock, **kw: object) -> Job:
    await enqueue_one(backend, **kw)
    claimed = await claim_one(backend)
    return await backend.fail(FailRequest(claimed.lease, error_for(1, clock)))


# ----------------------------------------------------------------------------- fail


async def test_fail_with_retry_after_goes_retrying(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, max_attempts=3)
    claimed = await claim_one(backend)
    error = error_for(1, clock)
    out = await backend.fail(FailRequest(claimed.lease, error, retry_after=timedelta(seconds=10)))
    assert out == await stored(backend, job.id)
    assert out.status is JobStatus.RETRYING
    assert out.run_at == clock.now() + timedelta(seconds=10)
    assert out.attempts == 1 and out.errors == (error,)
    assert out.lease_owner is None and out.lease_expires_at is None and out.finished_at is None
    assert await backend.claim(claim_request()) == []
    clock.advance(timedelta(seconds=9))
    assert await backend.claim(claim_request()) == []
    clock.advance(timedelta(seconds=1))
    again = await claim_one(backend)
    assert again.job.id == job.id and again.job.attempts == 2


async def test_fail_without_retry_goes_to_dlq_with_errors_in_order(
    backend: Backend, clock: FrozenClock
) -> None:
    job = await enqueue_one(backend, max_attempts=3)
    errors = []
    for attempt in (1, 2, 3):
        claimed = await claim_one(backend)
        assert claimed.lease.attempt == attempt
        errors.append(error_for(attempt, clock, f"failure {attempt}"))
        retry = timedelta(0) if attempt < 3 else None
        await backend.fail(FailRequest(claimed.lease, errors[-1], retry_after=retry))
        clock.advance(timedelta(seconds=1))
    final = await stored(backend, job.id)
    assert final.status is JobStatus.FAILED
    assert final.errors == tuple(errors)
    assert [e.attempt for e in final.errors] == [1, 2, 3]
    assert final.last_error == errors[-1]
    assert final.attempts == 3
    assert final.finished_at == clock.now() - timedelta(seconds=1)


async def test_discard_fails_at_once(backend: Backend, clock: FrozenClock) -> None:
    """A permanent error (Discard) skips the remaining attempts."""
    job = await enqueue_one(backend, max_attempts=5)
    claimed = await claim_one(backend)
    out = await backend.fail(FailRequest(claimed.lease, error_for(1, clock), retry_after=None))
    assert out.status is JobStatus.FAILED and out.attempts == 1
    assert out.finished_at == clock.now()
    assert (await stored(backend, job.id)).status is JobStatus.FAILED


async def test_fail_without_charging_attempt(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, max_attempts=2)
    claimed = await claim_one(backend)
    out = await backend.fail(
        FailRequest(claimed.lease, None, retry_after=timedelta(seconds=5), charge_attempt=False)
    )
    assert out.status is JobStatus.RETRYING and out.attempts == 0 and out.errors == ()
    clock.advance(timedelta(seconds=5))
    again = await claim_one(backend)
    assert again.job.id == job.id and again.job.attempts == 1


async def test_fail_error_round_trip(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    clock.advance(timedelta(microseconds=123_456))
    error = error_for(1, clock, "ünïcode message ✓")
    await backend.fail(FailRequest(claimed.lease, error, retry_after=timedelta(minutes=1)))
    assert (await stored(backend, job.id)).errors == (error,)


# ----------------------------------------------------------------------------- release


async def test_release_returns_job_without_charging(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    clock.advance(timedelta(seconds=3))
    assert await backend.release([claimed.lease]) == []
    out = await stored(backend, job.id)
    assert out.status is JobStatus.QUEUED and out.attempts == 0
    assert out.run_at == clock.now()
    assert out.lease_owner is None and out.lease_expires_at is None and out.finished_at is None
    assert out.errors == ()
    again = await claim_one(backend)
    assert again.job.attempts == 1 and again.token != claimed.token


async def test_release_batch_reports_lost(backend: Backend) -> None:
    await enqueue_one(backend)
    await enqueue_one(backend)
    [a, b] = await backend.claim(claim_request(limit=2))
    await complete_one(backend, b.lease)
    assert await backend.release([a.lease, b.lease]) == [b.job.id]
    assert (await stored(backend, a.job.id)).status is JobStatus.QUEUED
    assert (await stored(backend, b.job.id)).status is JobStatus.COMPLETED


# ----------------------------------------------------------------------------- cancel


@pytest.mark.parametrize("delay", [None, timedelta(hours=1)])
async def test_cancel_waiting_job(backend: Backend, clock: FrozenClock, delay: object) -> None:
    job = await enqueue_one(backend, delay=delay)
    out = await backend.cancel(job.id)
    assert out.status is JobStatus.CANCELLED and out.finished_at == clock.now()
    assert out == await stored(backend, job.id)
    clock.advance(timedelta(hours=2))
    assert await backend.claim(claim_request()) == []


async def test_cancel_retrying_job(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    await backend.fail(FailRequest(claimed.lease, error_for(1, clock), timedelta(minutes=1)))
    out = await backend.cancel(job.id)
    assert out.status is JobStatus.CANCELLED and out.errors == (error_for(1, clock),)


async def test_cancel_running_requests_cancel(backend: Backend) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    out = await backend.cancel(job.id)
    assert out.status is JobStatus.RUNNING and out.cancel_requested
    again = await backend.cancel(job.id)  # asking twice is harmless
    assert again.status is JobStatus.RUNNING and again.cancel_requested
    assert out.lease_owner == claimed.lease.owner


async def test_cancel_requested_then_fail_cancels(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, max_attempts=5)
    claimed = await claim_one(backend)
    await backend.cancel(job.id)
    error = error_for(1, clock, "cancelled by request")
    out = await backend.fail(FailRequest(claimed.lease, error, retry_after=timedelta(seconds=1)))
    assert out.status is JobStatus.CANCELLED and out.finished_at == clock.now()
    assert out.errors == (error,) and out.lease_owner is None


async def test_cancel_requested_then_release_cancels(backend: Backend) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    await backend.cancel(job.id)
    assert await backend.release([claimed.lease]) == []
    out = await stored(backend, job.id)
    assert out.status is JobStatus.CANCELLED and out.finished_at is not None


async def test_cancel_requested_then_rescue_cancels(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    await claim_one(backend, lease_for=LEASE)
    await backend.cancel(job.id)
    clock.advance(LEASE * 2)
    outcome = await backend.rescue()
    assert outcome.cancelled == (job.id,) and outcome.requeued == () and outcome.failed == ()
    out = await stored(backend, job.id)
    assert out.status is JobStatus.CANCELLED
    assert out.errors[-1].type == "conveyor.LeaseExpired"


async def test_cancel_requested_then_complete_completes(backend: Backend) -> None:
    """Decision: work that finished before the cancel reached it stays completed."""
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    await backend.cancel(job.id)
    await complete_one(backend, claimed.lease, result="done")
    out = await stored(backend, job.id)
    assert out.status is JobStatus.COMPLETED and out.result == "done"


async def test_cancel_final_job_is_invalid(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    await complete_one(backend, claimed.lease)
    with pytest.raises(InvalidTransition):
        await backend.cancel(job.id)
    failed = await failed_job(backend, clock)
    with pytest.raises(InvalidTransition):
        await backend.cancel(failed.id)
    cancelled = await enqueue_one(backend)
    await backend.cancel(cancelled.id)
    with pytest.raises(InvalidTransition):
        await backend.cancel(cancelled.id)


async def test_cancel_unknown(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.cancel(new_job_id())


# ----------------------------------------------------------------------------- requeue


async def test_requeue_one_failed_job(backend: Backend, clock: FrozenClock) -> None:
    job = await failed_job(backend, clock, max_attempts=1)
    clock.advance(timedelta(minutes=5))
    ids = await backend.requeue(RequeueRequest(JobFilter(ids=frozenset({job.id}))))
    assert ids == [job.id]
    out = await stored(backend, job.id)
    assert out.status is JobStatus.QUEUED and out.attempts == 0 and out.rescues == 0
    assert out.run_at == clock.now() and out.finished_at is None
    assert out.errors == job.errors and len(out.errors) == 1  # history kept
    claimed = await claim_one(backend)
    assert claimed.job.id == job.id and claimed.job.attempts == 1


async def test_requeue_cancelled_clears_cancel_request(backend: Backend) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    await backend.cancel(job.id)
    await backend.release([claimed.lease])
    assert await backend.requeue(RequeueRequest(JobFilter(ids=frozenset({job.id})))) == [job.id]
    out = await stored(backend, job.id)
    assert out.status is JobStatus.QUEUED and not out.cancel_requested


async def test_requeue_by_filter(backend: Backend, clock: FrozenClock) -> None:
    mine = [await failed_job(backend, clock, queue="default", kind="a") for _ in range(3)]
    other_kind = await failed_job(backend, clock, kind="b")
    cancelled = await enqueue_one(backend, kind="a")
    await backend.cancel(cancelled.id)
    flt = JobFilter(statuses=frozenset({JobStatus.FAILED}), kinds=frozenset({"a"}))
    ids = await backend.requeue(RequeueRequest(flt))
    assert sorted(ids) == sorted(j.id for j in mine)
    assert (await stored(backend, other_kind.id)).status is JobStatus.FAILED
    assert (await stored(backend, cancelled.id)).status is JobStatus.CANCELLED


async def test_requeue_without_statuses_takes_failed_and_cancelled(
    backend: Backend, clock: FrozenClock
) -> None:
    failed = await failed_job(backend, clock)
    cancelled = await enqueue_one(backend)
    await backend.cancel(cancelled.id)
    done = await enqueue_one(backend)
    claimed = await claim_one(backend)
    await complete_one(backend, claimed.lease)
    waiting = await enqueue_one(backend)
    ids = await backend.requeue(RequeueRequest(JobFilter()))
    assert sorted(ids) == sorted([failed.id, cancelled.id])
    assert (await stored(backend, done.id)).status is JobStatus.COMPLETED
    assert (await stored(backend, waiting.id)).status is JobStatus.QUEUED


async def test_requeue_skips_non_final(backend: Backend, clock: FrozenClock) -> None:
    failed = await failed_job(backend, clock)
    running = await enqueue_one(backend)
    [claimed] = await backend.claim(claim_request())
    assert claimed.job.id == running.id
    queued = await enqueue_one(backend)
    every = frozenset({failed.id, queued.id, running.id})
    flt = JobFilter(statuses=frozenset(JobStatus), ids=every)
    assert await backend.requeue(RequeueRequest(flt)) == [failed.id]
    still_running = await stored(backend, running.id)
    assert still_running.status is JobStatus.RUNNING and still_running.attempts == 1
    assert (await stored(backend, queued.id)).status is JobStatus.QUEUED


async def test_requeue_respects_limit(backend: Backend, clock: FrozenClock) -> None:
    for _ in range(5):
        await failed_job(backend, clock)
    first = await backend.requeue(RequeueRequest(JobFilter(), limit=2))
    rest = await backend.requeue(RequeueRequest(JobFilter(), limit=10))
    assert len(first) == 2 and len(rest) == 3 and not set(first) & set(rest)
