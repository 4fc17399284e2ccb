"""Conformance: leases. Renew (the heartbeat), rescue of expired leases, and fencing: a write
naming a lease that is no longer current is refused and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.backends.conftest import claim_one, claim_request, enqueue_one

from conveyor.backend import (
    Backend,
    Completion,
    FailRequest,
    Lease,
    complete_one,
)
from conveyor.clock import FrozenClock
from conveyor.errors import LeaseLost
from conveyor.jobs import AttemptError, JobStatus

LEASE = timedelta(seconds=30)


async def test_rescue_requeues_expired_lease(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, max_attempts=3)
    await claim_one(backend, worker="dead", lease_for=LEASE)
    clock.advance(LEASE + timedelta(seconds=1))
    outcome = await backend.rescue(limit=10)
    assert outcome.requeued == (job.id,) and outcome.failed == () and outcome.cancelled == ()
    stored = await backend.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.QUEUED
    assert stored.attempts == 1  # the attempt stays charged
    assert stored.rescues == 1
    assert stored.run_at == clock.now()
    assert stored.lease_owner is None and stored.lease_expires_at is None
    assert stored.finished_at is None
    [error] = stored.errors
    assert error.type == "conveyor.LeaseExpired" and error.attempt == 1
    assert error.at == clock.now()
    again = await claim_one(backend, worker="alive")
    assert again.job.attempts == 2 and again.lease.attempt == 2


async def test_rescue_ignores_live_leases(backend: Backend, clock: FrozenClock) -> None:
    await enqueue_one(backend)
    await claim_one(backend, lease_for=LEASE)
    clock.advance(LEASE - timedelta(seconds=1))
    early = await backend.rescue()
    assert early.requeued == () and early.failed == () and early.cancelled == ()
    clock.advance(timedelta(seconds=1))  # lease_expires_at == now: not yet expired (strict <)
    outcome = await backend.rescue()
    assert outcome.requeued == () and outcome.failed == ()


async def test_rescue_fails_job_on_last_attempt(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, max_attempts=1)
    await claim_one(backend)
    clock.advance(LEASE * 2)
    outcome = await backend.rescue()
    assert outcome.failed == (job.id,) and outcome.requeued == ()
    stored = await backend.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.finished_at == clock.now()
    assert stored.errors[-1].type == "conveyor.LeaseExpired"


async def test_rescue_fails_job_after_max_rescues(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend, max_attempts=10)
    outcomes = []
    for _ in range(3):
        await claim_one(backend)
        clock.advance(LEASE * 2)
        outcomes.append(await backend.rescue(max_rescues=2))
    assert [o.requeued for o in outcomes[:2]] == [(job.id,), (job.id,)]
    assert outcomes[2].failed == (job.id,)
    stored = await backend.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.rescues == 3 and stored.attempts == 3
    assert [e.attempt for e in stored.errors] == [1, 2, 3]


async def test_rescue_respects_limit(backend: Backend, clock: FrozenClock) -> None:
    for _ in range(3):
        await enqueue_one(backend)
    await backend.claim(claim_request(limit=3))
    clock.advance(LEASE * 2)
    first = await backend.rescue(limit=2)
    second = await backend.rescue(limit=2)
    assert len(first.requeued) == 2 and len(second.requeued) == 1
    assert not set(first.requeued) & set(second.requeued)


async def _rescued_and_reclaimed(backend: Backend, clock: FrozenClock) -> tuple[Lease, Lease]:
    await enqueue_one(backend)
    old = await claim_one(backend, worker="a", lease_for=LEASE)
    clock.advance(LEASE + timedelta(seconds=1))
    await backend.rescue(limit=10)
    new = await claim_one(backend, worker="b", lease_for=LEASE)
    assert new.job.id == old.job.id and new.token != old.token
    return old.lease, new.lease


async def test_stale_lease_writes_are_refused(backend: Backend, clock: FrozenClock) -> None:
    old, new = await _rescued_and_reclaimed(backend, clock)
    await backend.set_progress(new, {"phase": "new"})
    before = await backend.get(new.job_id)
    with pytest.raises(LeaseLost):
        await complete_one(backend, old, result="stale")
    assert await backend.complete([Completion(old, result="stale")]) == [old.job_id]
    error = AttemptError(attempt=1, at=clock.now(), type="builtins.ValueError", message="x")
    with pytest.raises(LeaseLost):
        await backend.fail(FailRequest(old, error, retry_after=None))
    with pytest.raises(LeaseLost):
        await backend.set_progress(old, {"phase": "stale"})
    assert await backend.release([old]) == [old.job_id]
    renew = await backend.renew([old], LEASE)
    assert renew.lost == {old.job_id} and not renew.renewed
    assert await backend.get(new.job_id) == before  # the newer attempt is untouched
    assert before is not None and before.status is JobStatus.RUNNING
    assert before.lease_owner == "b" and before.attempts == 2
    assert before.progress == {"phase": "new"}
    await complete_one(backend, new, result="fresh")
    done = await backend.get(new.job_id)
    assert done is not None and done.status is JobStatus.COMPLETED and done.result == "fresh"


async def test_wrong_token_is_refused_even_for_same_owner(backend: Backend) -> None:
    await enqueue_one(backend)
    claimed = await claim_one(backend)
    forged = Lease(claimed.lease.job_id, claimed.lease.owner, "not-the-token", 1)
    assert await backend.complete([Completion(forged)]) == [forged.job_id]
    stored = await backend.get(forged.job_id)
    assert stored is not None and stored.status is JobStatus.RUNNING


async def test_writes_after_completion_are_refused(backend: Backend) -> None:
    await enqueue_one(backend)
    claimed = await claim_one(backend)
    await complete_one(backend, claimed.lease, result=1)
    with pytest.raises(LeaseLost):
        await complete_one(backend, claimed.lease, result=2)
    stored = await backend.get(claimed.job.id)
    assert stored is not None and stored.result == 1


async def test_renew_extends_lease(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend, lease_for=LEASE)
    clock.advance(timedelta(seconds=20))
    outcome = await backend.renew([claimed.lease], LEASE)
    assert outcome.renewed == {job.id} and not outcome.lost and not outcome.cancel_requested
    clock.advance(timedelta(seconds=20))  # past the original expiry
    rescued = await backend.rescue()
    assert rescued.requeued == () and rescued.failed == ()
    stored = await backend.get(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert stored.lease_expires_at == clock.now() + timedelta(seconds=10)


async def test_renew_reports_lost_and_cancel_requested(
    backend: Backend, clock: FrozenClock
) -> None:
    await enqueue_one(backend)
    await enqueue_one(backend)
    await enqueue_one(backend)
    [keep, cancel, lose] = await backend.claim(claim_request(limit=3))
    await backend.cancel(cancel.job.id)
    await complete_one(backend, lose.lease)
    outcome = await backend.renew([keep.lease, cancel.lease, lose.lease], LEASE)
    assert outcome.renewed == {keep.job.id, cancel.job.id}
    assert outcome.cancel_requested == {cancel.job.id}
    assert outcome.lost == {lose.job.id}


async def test_complete_batch_with_current_and_lost_leases(
    backend: Backend, clock: FrozenClock
) -> None:
    await enqueue_one(backend, payload={"n": 1})
    short = await claim_one(backend, lease_for=timedelta(seconds=10))
    await enqueue_one(backend, payload={"n": 2})
    await enqueue_one(backend, payload={"n": 3})
    [b, c] = await backend.claim(claim_request(limit=2, lease_for=timedelta(seconds=60)))
    clock.advance(timedelta(seconds=11))
    assert (await backend.rescue()).requeued == (short.job.id,)
    lost = await backend.complete(
        [
            Completion(short.lease, result="late"),
            Completion(b.lease, result={"ok": ["ü", 1]}),
            Completion(c.lease, result=None),
        ]
    )
    assert lost == [short.job.id]
    done_b, done_c = await backend.get(b.job.id), await backend.get(c.job.id)
    assert done_b is not None and done_c is not None
    assert done_b.status is JobStatus.COMPLETED and done_b.result == {"ok": ["ü", 1]}
    assert done_c.status is JobStatus.COMPLETED and done_c.result is None
    assert done_b.finished_at == clock.now() and done_b.lease_owner is None
    assert done_b.lease_expires_at is None
    requeued = await backend.get(short.job.id)
    assert requeued is not None and requeued.status is JobStatus.QUEUED
    assert requeued.result is None


@pytest.mark.parametrize("result", [42, "text", 2.5, True, [1, {"a": None}], {"k": "v"}])
async def test_complete_result_round_trip(backend: Backend, result: object) -> None:
    await enqueue_one(backend)
    claimed = await claim_one(backend)
    await complete_one(backend, claimed.lease, result=result)  # type: ignore[arg-type]
    stored = await backend.get(claimed.job.id)
    assert stored is not None and stored.result == result


async def test_progress_set_and_get(backend: Backend, clock: FrozenClock) -> None:
    await enqueue_one(backend)
    claimed = await claim_one(backend)
    await backend.set_progress(claimed.lease, {"phase": "build", "percent": 10})
    await backend.set_progress(claimed.lease, {"phase": "push", "urls": ["http://x/ü"]})
    stored = await backend.get(claimed.job.id)
    assert stored is not None
    assert stored.progress == {"phase": "push", "urls": ["http://x/ü"]}  # replaced, not merged
    assert stored.status is JobStatus.RUNNING
    await complete_one(backend, claimed.lease)
    done = await backend.get(claimed.job.id)
    assert done is not None and done.progress == {"phase": "push", "urls": ["http://x/ü"]}
