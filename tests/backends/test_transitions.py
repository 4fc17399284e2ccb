"""Conformance: the engine's guards stay in step with ``conveyor.jobs.TRANSITIONS`` (every
admin verb tried from every status), and the contract's smaller promises: the backend does not
second-guess attempts, stored JSON is a copy, and a payload that is not JSON is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.backends.conftest import claim_one, enqueue_one, new_job

from conveyor.backend import (
    Backend,
    FailRequest,
    JobFilter,
    ListRequest,
    RequeueRequest,
    complete_one,
)
from conveyor.clock import FrozenClock
from conveyor.errors import EnqueueRefused, InvalidTransition
from conveyor.jobs import AttemptError, JobId, JobStatus, Verb, next_status

S = JobStatus


async def job_in_status(backend: Backend, clock: FrozenClock, status: JobStatus) -> JobId:
    """Drive a fresh job, through the protocol only, into ``status`` (its own queue)."""
    queue = f"q-{status.value}"
    if status is S.SCHEDULED:
        return (await enqueue_one(backend, queue=queue, delay=timedelta(hours=1))).id
    job = await enqueue_one(backend, queue=queue)
    if status is S.QUEUED:
        return job.id
    if status is S.CANCELLED:
        return (await backend.cancel(job.id)).id
    claimed = await claim_one(backend, queues=(queue,))
    error = AttemptError(attempt=1, at=clock.now(), type="x.Error", message="x")
    if status is S.RETRYING:
        await backend.fail(FailRequest(claimed.lease, error, retry_after=timedelta(hours=1)))
    elif status is S.FAILED:
        await backend.fail(FailRequest(claimed.lease, error))
    elif status is S.COMPLETED:
        await complete_one(backend, claimed.lease)
    return job.id


async def current(backend: Backend, job_id: JobId) -> JobStatus:
    job = await backend.get(job_id)
    assert job is not None
    return job.status


@pytest.mark.parametrize("status", list(JobStatus))
async def test_cancel_from_every_status(
    backend: Backend, clock: FrozenClock, status: JobStatus
) -> None:
    job_id = await job_in_status(backend, clock, status)
    assert await current(backend, job_id) is status
    if status is S.RUNNING:
        job = await backend.cancel(job_id)
        assert job.status is S.RUNNING and job.cancel_requested
        return
    target = next_status(Verb.CANCEL, status)
    if target is None:
        with pytest.raises(InvalidTransition):
            await backend.cancel(job_id)
        assert await current(backend, job_id) is status
    else:
        assert (await backend.cancel(job_id)).status is target


@pytest.mark.parametrize("status", list(JobStatus))
async def test_requeue_from_every_status(
    backend: Backend, clock: FrozenClock, status: JobStatus
) -> None:
    job_id = await job_in_status(backend, clock, status)
    flt = JobFilter(statuses=frozenset(JobStatus), ids=frozenset({job_id}))
    ids = await backend.requeue(RequeueRequest(flt))
    target = next_status(Verb.REQUEUE, status)
    if target is None:
        assert ids == []
        assert await current(backend, job_id) is status
    else:
        assert ids == [job_id]
        assert await current(backend, job_id) is target


async def test_stats_count_one_job_in_every_status(backend: Backend, clock: FrozenClock) -> None:
    for status in JobStatus:
        await job_in_status(backend, clock, status)
    stats = {s.queue: s for s in await backend.stats()}
    assert sorted(stats) == sorted(f"q-{s.value}" for s in JobStatus)
    for status in JobStatus:
        counts = stats[f"q-{status.value}"].counts
        assert counts == {s: int(s is status) for s in JobStatus}


async def test_list_by_every_status(backend: Backend, clock: FrozenClock) -> None:
    ids = {status: await job_in_status(backend, clock, status) for status in JobStatus}
    for status, job_id in ids.items():
        flt = JobFilter(statuses=frozenset({status}))
        page = await backend.list_jobs(ListRequest(filter=flt))
        assert [j.id for j in page.jobs] == [job_id]


async def test_backend_does_not_second_guess_attempts(backend: Backend, clock: FrozenClock) -> None:
    """The caller's retry policy decides: retry_after on the last attempt still retries."""
    job = await enqueue_one(backend, max_attempts=1)
    claimed = await claim_one(backend)
    error = AttemptError(attempt=1, at=clock.now(), type="x.Error", message="x")
    out = await backend.fail(FailRequest(claimed.lease, error, retry_after=timedelta(0)))
    assert out.status is S.RETRYING
    again = await claim_one(backend)
    assert again.job.id == job.id and again.job.attempts == 2


async def test_fail_uncharged_without_retry_fails(backend: Backend) -> None:
    await enqueue_one(backend, max_attempts=3)
    claimed = await claim_one(backend)
    out = await backend.fail(FailRequest(claimed.lease, None, charge_attempt=False))
    assert out.status is S.FAILED and out.attempts == 0 and out.errors == ()


async def test_stored_json_is_a_copy(backend: Backend) -> None:
    payload: dict[str, object] = {"list": [1, 2], "obj": {"a": 1}}
    [enq] = await backend.enqueue([new_job(payload=payload)])  # type: ignore[arg-type]
    payload["list"].append(3)  # type: ignore[attr-defined]
    enq.job.payload["obj"]["a"] = 99  # type: ignore[index]
    stored = await backend.get(enq.job.id)
    assert stored is not None and stored.payload == {"list": [1, 2], "obj": {"a": 1}}
    stored.payload["list"].append(4)  # type: ignore[union-attr]
    again = await backend.get(enq.job.id)
    assert again is not None and again.payload == {"list": [1, 2], "obj": {"a": 1}}


async def test_tuples_come_back_as_lists(backend: Backend) -> None:
    job = await enqueue_one(backend, payload={"t": (1, "a")})
    stored = await backend.get(job.id)
    assert stored is not None and stored.payload == {"t": [1, "a"]}


async def test_payload_that_is_not_json_is_refused(backend: Backend) -> None:
    with pytest.raises(EnqueueRefused):
        await backend.enqueue([new_job(), new_job(payload={"x": {1, 2}})])  # type: ignore[dict-item]
    page = await backend.list_jobs(ListRequest())
    assert page.jobs == ()


async def test_idempotency_key_is_global_across_queues(backend: Backend) -> None:
    first = await enqueue_one(backend, queue="a", idempotency_key="k")
    [again] = await backend.enqueue([new_job(queue="b", idempotency_key="k")])
    assert not again.created and again.job.id == first.id and again.job.queue == "a"


async def test_empty_batches(backend: Backend) -> None:
    assert await backend.complete([]) == []
    assert await backend.release([]) == []
    outcome = await backend.renew([], timedelta(seconds=30))
    assert not outcome.renewed and not outcome.lost and not outcome.cancel_requested
