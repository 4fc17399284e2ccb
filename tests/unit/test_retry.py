"""Unit tests of the retry policy: exponential growth, the cap, jitter bounds, validation."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from conveyor.retry import DEFAULT_RETRY_POLICY, RetryPolicy


def test_ceiling_grows_exponentially_then_caps() -> None:
    policy = RetryPolicy(base=timedelta(seconds=1), factor=2.0, cap=timedelta(seconds=30))
    seconds = [policy.ceiling(n).total_seconds() for n in range(1, 8)]
    assert seconds == [1, 2, 4, 8, 16, 30, 30]


def test_ceiling_of_attempt_zero_or_below_is_base() -> None:
    policy = RetryPolicy(base=timedelta(seconds=3))
    assert policy.ceiling(0) == timedelta(seconds=3)
    assert policy.ceiling(-5) == timedelta(seconds=3)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = RetryPolicy(cap=timedelta(hours=1))
    assert policy.ceiling(10_000) == timedelta(hours=1)
    assert policy.delay(10_000, random.Random(1)) <= timedelta(hours=1)


def test_factor_one_is_constant() -> None:
    policy = RetryPolicy(base=timedelta(seconds=5), factor=1.0, cap=timedelta(seconds=60))
    assert {policy.ceiling(n) for n in range(1, 20)} == {timedelta(seconds=5)}


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 1.0])
def test_delay_stays_within_jitter_window(jitter: float) -> None:
    policy = RetryPolicy(base=timedelta(seconds=2), cap=timedelta(minutes=10), jitter=jitter)
    rng = random.Random(42)
    for attempt in range(1, 15):
        ceiling = policy.ceiling(attempt)
        for _ in range(50):
            delay = policy.delay(attempt, rng)
            assert ceiling * (1 - jitter) - timedelta(microseconds=1) <= delay <= ceiling


def test_no_jitter_is_exact() -> None:
    policy = RetryPolicy(base=timedelta(seconds=1), jitter=0.0)
    assert policy.delay(4, random.Random(7)) == timedelta(seconds=8)


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(jitter=1.0)
    rng = random.Random(3)
    delays = {policy.delay(5, rng) for _ in range(100)}
    assert len(delays) > 90


def test_delay_is_deterministic_with_seeded_rng() -> None:
    policy = DEFAULT_RETRY_POLICY
    assert policy.delay(3, random.Random(9)) == policy.delay(3, random.Random(9))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": timedelta(0)},
        {"base": timedelta(seconds=-1)},
        {"base": timedelta(seconds=10), "cap": timedelta(seconds=5)},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
    ],
)
def test_invalid_policies(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
