"""Conformance, property-based: a Hypothesis state machine drives random sequences of verbs
(enqueue, claim, renew, complete, fail, release, cancel, requeue, rescue, stale writes, time
passing) against an engine and checks every step against a tiny model of the contract:

* each job's status and attempts match the model (a scheduled or retrying job whose run_at has
  passed may show as queued: promotion is display-only);
* a claim takes exactly the jobs the Ordering rule names, none of them held by a lease;
* a write with a stale lease is refused and changes nothing;
* attempts never exceed max_attempts when the caller retries only with attempts left.

Each Hypothesis example works in a queue of its own, so examples share one store per engine.
``CONVEYOR_STATEFUL_EXAMPLES=500`` makes a soak run of it (default 30, to stay fast).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor.backend import (
    DEFAULT_MAX_RESCUES,
    Backend,
    ClaimRequest,
    Completion,
    FailRequest,
    JobFilter,
    Lease,
    ListRequest,
    RequeueRequest,
)
from conveyor.backends import open_backend
from conveyor.clock import FrozenClock
from conveyor.errors import InvalidTransition
from conveyor.jobs import AttemptError, JobId, JobStatus, NewJob, WorkerId

T = TypeVar("T")
EXAMPLES = int(os.environ.get("CONVEYOR_STATEFUL_EXAMPLES", "30"))  # raise it for a soak run
S = JobStatus
RETRY_DELAY = timedelta(seconds=5)


@dataclass
class Model:
    """What the contract says one job looks like now."""

    status: JobStatus
    priority: int
    run_at: datetime
    max_attempts: int
    attempts: int = 0
    rescues: int = 0
    cancel_requested: bool = False
    lease: Lease | None = None
    lease_expires_at: datetime | None = None


class LifecycleMachine(RuleBasedStateMachine):
    url: ClassVar[str] = "memory://"

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = FrozenClock()
        self.queue = f"q{uuid.uuid4().hex[:10]}"
        self.jobs: dict[JobId, Model] = {}
        self.stale: list[Lease] = []
        self.claims = 0
        self.backend: Backend = open_backend(self.url, clock=self.clock)
        self.run(self.backend.open())

    def run(self, coro: Coroutine[object, object, T]) -> T:
        return self.runner.run(coro)

    def teardown(self) -> None:
        try:
            self.run(self.backend.close())
        finally:
            self.runner.close()

    def held(self) -> list[JobId]:
        return sorted(i for i, m in self.jobs.items() if m.lease is not None)

    def end_lease(self, model: Model) -> None:
        assert model.lease is not None
        self.stale.append(model.lease)
        model.lease = None
        model.lease_expires_at = None

    # ------------------------------------------------------------------ rules

    @rule(
        count=st.integers(1, 2),
        priority=st.sampled_from([-1, 0, 2]),
        delay=st.sampled_from([None, timedelta(seconds=5)]),
        max_attempts=st.integers(1, 2),
    )
    def enqueue(
        self, count: int, priority: int, delay: timedelta | None, max_attempts: int
    ) -> None:
        new = [
            NewJob(
                kind="prop",
                queue=self.queue,
                priority=priority,
                delay=delay,
                max_attempts=max_attempts,
            )
            for _ in range(count)
        ]
        out = self.run(self.backend.enqueue(new))
        now = self.clock.now()
        for enqueued in out:
            assert enqueued.created
            status = S.SCHEDULED if delay else S.QUEUED
            run_at = now + (delay or timedelta(0))
            self.jobs[enqueued.job.id] = Model(status, priority, run_at, max_attempts)

    @rule(limit=st.integers(1, 3), lease_seconds=st.sampled_from([10, 30]))
    def claim(self, limit: int, lease_seconds: int) -> None:
        now = self.clock.now()
        claimable = [
            (-m.priority, m.run_at, i)
            for i, m in self.jobs.items()
            if m.status.is_waiting and m.run_at <= now
        ]
        expected = {i for _, _, i in sorted(claimable)[:limit]}
        self.claims += 1
        worker = WorkerId(f"w{self.claims}")
        lease_for = timedelta(seconds=lease_seconds)
        request = ClaimRequest(
            worker=worker, queues=(self.queue,), limit=limit, lease_for=lease_for
        )
        claimed = self.run(self.backend.claim(request))
        assert {c.job.id for c in claimed} == expected
        for c in claimed:
            model = self.jobs[c.job.id]
            assert model.lease is None, "a job was handed to two claimers"
            model.status = S.RUNNING
            model.attempts += 1
            model.lease = c.lease
            model.lease_expires_at = now + lease_for
            assert c.lease.attempt == model.attempts and c.job.attempts == model.attempts

    @precondition(lambda self: self.held())
    @rule(pick=st.integers(0, 50))
    def renew(self, pick: int) -> None:
        job_id = self.held()[pick % len(self.held())]
        model = self.jobs[job_id]
        assert model.lease is not None
        outcome = self.run(self.backend.renew([model.lease], timedelta(seconds=30)))
        assert outcome.renewed == {job_id} and not outcome.lost
        assert (job_id in outcome.cancel_requested) == model.cancel_requested
        model.lease_expires_at = self.clock.now() + timedelta(seconds=30)

    @precondition(lambda self: self.held())
    @rule(pick=st.integers(0, 50))
    def complete(self, pick: int) -> None:
        job_id = self.held()[pick % len(self.held())]
        model = self.jobs[job_id]
        assert model.lease is not None
        lost = self.run(self.backend.complete([Completion(model.lease, result=pick)]))
        assert lost == []
        model.status = S.COMPLETED
        self.end_lease(model)

    @precondition(lambda self: self.held())
    @rule(pick=st.integers(0, 50), retry=st.booleans(), charge=st.booleans())
    def fail(self, pick: int, retry: bool, charge: bool) -> None:
        job_id = self.held()[pick % len(self.held())]
        model = self.jobs[job_id]
        assert model.lease is not None
        attempts = model.attempts if charge else model.attempts - 1
        retry = retry and attempts < model.max_attempts  # the worker's policy: attempts left
        error = (
            AttemptError(model.attempts, self.clock.now(), "prop.Error", "x") if charge else None
        )
        request = FailRequest(model.lease, error, RETRY_DELAY if retry else None, charge)
        job = self.run(self.backend.fail(request))
        model.attempts = attempts
        if model.cancel_requested:
            model.status = S.CANCELLED
        elif retry:
            model.status, model.run_at = S.RETRYING, self.clock.now() + RETRY_DELAY
        else:
            model.status = S.FAILED
        self.end_lease(model)
        assert job.status is model.status and job.attempts == model.attempts

    @precondition(lambda self: self.held())
    @rule(pick=st.integers(0, 50))
    def release(self, pick: int) -> None:
        job_id = self.held()[pick % len(self.held())]
        model = self.jobs[job_id]
        assert model.lease is not None
        assert self.run(self.backend.release([model.lease])) == []
        model.attempts -= 1
        if model.cancel_requested:
            model.status = S.CANCELLED
        else:
            model.status, model.run_at = S.QUEUED, self.clock.now()
        self.end_lease(model)

    @precondition(lambda self: self.jobs)
    @rule(pick=st.integers(0, 50))
    def cancel(self, pick: int) -> None:
        job_id = sorted(self.jobs)[pick % len(self.jobs)]
        model = self.jobs[job_id]
        if model.status.is_final:
            with pytest.raises(InvalidTransition):
                self.run(self.backend.cancel(job_id))
            return
        job = self.run(self.backend.cancel(job_id))
        if model.status is S.RUNNING:
            model.cancel_requested = True
        else:
            model.status = S.CANCELLED
        assert job.status is model.status and job.cancel_requested == model.cancel_requested

    @precondition(lambda self: self.jobs)
    @rule(pick=st.integers(0, 50))
    def requeue(self, pick: int) -> None:
        job_id = sorted(self.jobs)[pick % len(self.jobs)]
        model = self.jobs[job_id]
        ids = self.run(self.backend.requeue(RequeueRequest(JobFilter(ids=frozenset({job_id})))))
        if model.status in (S.FAILED, S.CANCELLED):
            assert ids == [job_id]
            model.status, model.run_at = S.QUEUED, self.clock.now()
            model.attempts = model.rescues = 0
            model.cancel_requested = False
        else:
            assert ids == []

    @rule()
    def rescue(self) -> None:
        now = self.clock.now()
        outcome = self.run(self.backend.rescue())
        expected: dict[str, set[JobId]] = {"requeued": set(), "failed": set(), "cancelled": set()}
        for job_id, model in self.jobs.items():
            if model.lease is None or model.lease_expires_at is None:
                continue
            if model.lease_expires_at >= now:
                continue
            model.rescues += 1
            if model.cancel_requested:
                model.status, key = S.CANCELLED, "cancelled"
            elif model.attempts >= model.max_attempts or model.rescues > DEFAULT_MAX_RESCUES:
                model.status, key = S.FAILED, "failed"
            else:
                model.status, model.run_at, key = S.QUEUED, now, "requeued"
            expected[key].add(job_id)
            self.end_lease(model)
        ours = set(self.jobs)
        assert set(outcome.requeued) & ours == expected["requeued"]
        assert set(outcome.failed) & ours == expected["failed"]
        assert set(outcome.cancelled) & ours == expected["cancelled"]

    @precondition(lambda self: self.stale)
    @rule(pick=st.integers(0, 50))
    def stale_write(self, pick: int) -> None:
        lease = self.stale[pick % len(self.stale)]
        assert self.run(self.backend.complete([Completion(lease, result="stale")])) == [
            lease.job_id
        ]
        assert self.run(self.backend.release([lease])) == [lease.job_id]

    @rule(seconds=st.sampled_from([5, 11, 31]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    # ------------------------------------------------------------------ invariants

    @invariant()
    def store_matches_model(self) -> None:
        if not self.jobs:
            return
        flt = JobFilter(ids=frozenset(self.jobs))
        page = self.run(self.backend.list_jobs(ListRequest(filter=flt, limit=1000)))
        stored = {j.id: j for j in page.jobs}
        assert set(stored) == set(self.jobs)
        now = self.clock.now()
        for job_id, model in self.jobs.items():
            job = stored[job_id]
            promoted = model.status in (S.SCHEDULED, S.RETRYING) and model.run_at <= now
            allowed = {model.status, S.QUEUED} if promoted else {model.status}
            assert job.status in allowed, (job_id, job.status, model.status)
            assert job.attempts == model.attempts, (job_id, job.attempts, model.attempts)
            assert job.attempts <= job.max_attempts
            assert job.cancel_requested == model.cancel_requested
            if model.lease is not None:
                assert job.lease_owner == model.lease.owner
                assert job.lease_expires_at == model.lease_expires_at
            else:
                assert job.lease_owner is None and job.lease_expires_at is None
            if model.status.is_waiting:
                assert job.run_at == model.run_at


def test_job_lifecycle_state_machine(backend_url: str) -> None:
    class Machine(LifecycleMachine):
        url = backend_url

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None),
    )
