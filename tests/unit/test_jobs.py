"""Unit tests of the job model and its transition table (conveyor.jobs): the table is walked
pair by pair, so any change to it shows up here as a deliberate edit."""

from __future__ import annotations

import inspect
import pickle
from dataclasses import FrozenInstanceError, dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.errors import InvalidTransition
from conveyor.jobs import (
    FINAL_STATUSES,
    TRANSITIONS,
    WAITING_STATUSES,
    AttemptError,
    Job,
    JobId,
    JobStatus,
    NewJob,
    Verb,
    check_transition,
    next_status,
    slot_init,
    sources,
)

S = JobStatus
V = Verb

# The documented state machine (DESIGN.md), written out independently of TRANSITIONS.
EXPECTED: dict[tuple[Verb, JobStatus], JobStatus] = {
    (V.PROMOTE, S.SCHEDULED): S.QUEUED,
    (V.PROMOTE, S.RETRYING): S.QUEUED,
    (V.CLAIM, S.QUEUED): S.RUNNING,
    (V.CLAIM, S.SCHEDULED): S.RUNNING,
    (V.CLAIM, S.RETRYING): S.RUNNING,
    (V.COMPLETE, S.RUNNING): S.COMPLETED,
    (V.RETRY, S.RUNNING): S.RETRYING,
    (V.FAIL, S.RUNNING): S.FAILED,
    (V.RELEASE, S.RUNNING): S.QUEUED,
    (V.RESCUE, S.RUNNING): S.QUEUED,
    (V.RESCUE_FAIL, S.RUNNING): S.FAILED,
    (V.CANCEL, S.SCHEDULED): S.CANCELLED,
    (V.CANCEL, S.QUEUED): S.CANCELLED,
    (V.CANCEL, S.RETRYING): S.CANCELLED,
    (V.CANCEL_RUNNING, S.RUNNING): S.CANCELLED,
    (V.REQUEUE, S.FAILED): S.QUEUED,
    (V.REQUEUE, S.CANCELLED): S.QUEUED,
}

PAIRS = [(verb, status) for verb in Verb for status in JobStatus]


def test_table_covers_every_verb() -> None:
    assert set(TRANSITIONS) == set(Verb)


@pytest.mark.parametrize(("verb", "status"), PAIRS, ids=[f"{v}-{s}" for v, s in PAIRS])
def test_every_pair(verb: Verb, status: JobStatus) -> None:
    expected = EXPECTED.get((verb, status))
    assert next_status(verb, status) is expected
    if expected is None:
        with pytest.raises(InvalidTransition) as info:
            check_transition("job-1", verb, status)
        assert info.value.job_id == "job-1"
        assert info.value.status == status.value and info.value.verb == verb.value
        assert status not in sources(verb)
    else:
        assert check_transition("job-1", verb, status) is expected
        assert status in sources(verb)


def test_enqueue_has_no_source() -> None:
    assert sources(Verb.ENQUEUE) == frozenset()


def test_final_statuses_have_no_way_out_but_requeue() -> None:
    for status in FINAL_STATUSES:
        verbs = {v for v in Verb if next_status(v, status) is not None}
        assert verbs <= {Verb.REQUEUE}
    assert next_status(Verb.REQUEUE, S.COMPLETED) is None


def test_status_groups() -> None:
    assert {S.COMPLETED, S.FAILED, S.CANCELLED} == FINAL_STATUSES
    assert {S.SCHEDULED, S.QUEUED, S.RETRYING} == WAITING_STATUSES
    assert all(s.is_final for s in FINAL_STATUSES)
    assert all(s.is_waiting and not s.is_final for s in WAITING_STATUSES)
    assert not S.RUNNING.is_final and not S.RUNNING.is_waiting
    assert set(JobStatus) == FINAL_STATUSES | WAITING_STATUSES | {S.RUNNING}


def test_only_running_jobs_end_attempts() -> None:
    for verb in (V.COMPLETE, V.RETRY, V.FAIL, V.RELEASE, V.RESCUE, V.RESCUE_FAIL):
        assert sources(verb) == {S.RUNNING}


# ----------------------------------------------------------------------------- NewJob


def test_new_job_defaults() -> None:
    job = NewJob(kind="k")
    assert job.queue == "default" and job.payload == {} and job.priority == 0
    assert job.max_attempts == 25 and job.run_at is None and job.delay is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"run_at": datetime(2030, 1, 1, tzinfo=UTC), "delay": timedelta(seconds=1)},
        {"run_at": datetime(2030, 1, 1)},
        {"max_attempts": 0},
        {"priority": 1001},
        {"priority": -1001},
        {"kind": ""},
        {"queue": ""},
    ],
)
def test_new_job_rejects(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"kind": "k", **kwargs}
    with pytest.raises(ValueError):
        NewJob(**fields)  # type: ignore[arg-type]


def test_new_job_priority_bounds_accepted() -> None:
    assert NewJob(kind="k", priority=1000).priority == 1000
    assert NewJob(kind="k", priority=-1000).priority == -1000


# ----------------------------------------------------------------------------- AttemptError, Job


def test_attempt_error_json_round_trip() -> None:
    error = AttemptError(
        attempt=3,
        at=datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        type="builtins.ValueError",
        message="bad ü",
        traceback="Traceback ...",
        details={"status": 503, "nested": {"a": [1]}},
    )
    assert AttemptError.from_json(error.to_json()) == error
    bare = AttemptError(attempt=1, at=error.at, type="x.Y", message="m")
    assert AttemptError.from_json(bare.to_json()) == bare


def test_job_attempt_and_last_error() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    errors = tuple(AttemptError(attempt=i, at=at, type="t", message=str(i)) for i in (1, 2))
    job = Job(
        id=JobId("0190"),
        queue="default",
        kind="k",
        payload={},
        status=S.FAILED,
        priority=0,
        run_at=at,
        attempts=2,
        max_attempts=2,
        created_at=at,
        updated_at=at,
        errors=errors,
    )
    assert job.attempt == 2 and job.last_error == errors[1]
    assert replace(job, errors=()).last_error is None


# ------------------------------------------------------------------------------ slot_init


@slot_init
@dataclass(frozen=True, slots=True)
class _Fast:
    a: int
    b: list[int] = field(default_factory=list)
    c: str = "c"

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("a must not be negative")


@dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: list[int] = field(default_factory=list)
    c: str = "c"


def test_slot_init_keeps_the_dataclass_contract() -> None:
    assert str(inspect.signature(_Fast)) == str(inspect.signature(_Plain))
    one, two = _Fast(1), _Fast(a=2, c="x")
    assert (one.a, one.b, one.c) == (1, [], "c") and (two.a, two.c) == (2, "x")
    assert one.b is not _Fast(1).b  # a fresh default per instance
    assert _Fast(3, [4], "d") == _Fast(a=3, b=[4], c="d")
    assert replace(one, c="y") == _Fast(1, [], "y")
    assert pickle.loads(pickle.dumps(two)) == two
    with pytest.raises(FrozenInstanceError):
        one.a = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="negative"):
        _Fast(-1)  # __post_init__ still runs
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]


def test_jobs_built_through_slot_init_stay_frozen() -> None:
    now = datetime.now(UTC)
    job = NewJob(kind="k").stored(JobId("j"), now, now)
    assert job.payload == {} and job.errors == () and job.status is JobStatus.QUEUED
    with pytest.raises(FrozenInstanceError):
        job.status = JobStatus.RUNNING  # type: ignore[misc]
    with pytest.raises(ValueError, match="kind"):
        NewJob(kind="")
