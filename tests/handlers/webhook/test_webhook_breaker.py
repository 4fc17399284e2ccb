"""Circuit breaker: the pure state machine (FrozenClock) and its sharing through a
RecordStore by several ``CircuitBreakers`` (one per process in production)."""

from __future__ import annotations

from datetime import timedelta

from conveyor.backends.memory_records import MemoryRecords
from conveyor.clock import FrozenClock
from conveyor.handlers.webhook.breaker import (
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    CircuitBreakers,
    admit,
    record_outcomes,
    record_probe,
)

CONFIG = BreakerConfig(
    window=timedelta(seconds=60),
    bucket=timedelta(seconds=5),
    min_requests=10,
    failure_rate=0.5,
    open_for=timedelta(seconds=30),
    max_open_for=timedelta(seconds=100),
    probe_timeout=timedelta(seconds=20),
    flush_interval=timedelta(0),
    cache_ttl=timedelta(0),
)


def test_opens_only_with_enough_requests() -> None:
    clock = FrozenClock()
    snap = record_outcomes(BreakerSnapshot(host="h:80"), 0, 9, clock.now(), CONFIG)
    assert snap.state is BreakerState.CLOSED  # 100 % failures, but 9 < min_requests
    assert snap.totals(clock.now(), CONFIG) == (0, 9)
    snap = record_outcomes(snap, 0, 1, clock.now(), CONFIG)
    assert snap.state is BreakerState.OPEN


def test_failure_rate_threshold() -> None:
    clock = FrozenClock()
    snap = record_outcomes(BreakerSnapshot(host="h:80"), 6, 4, clock.now(), CONFIG)
    assert snap.state is BreakerState.CLOSED  # 40 % failures
    snap = record_outcomes(snap, 0, 2, clock.now(), CONFIG)
    assert snap.state is BreakerState.OPEN  # 6 of 12 = 50 %
    assert snap.opened_at == clock.now() and snap.buckets == ()


def test_old_outcomes_leave_the_window() -> None:
    clock = FrozenClock()
    snap = record_outcomes(BreakerSnapshot(host="h:80"), 0, 9, clock.now(), CONFIG)
    clock.advance(timedelta(seconds=70))
    snap = record_outcomes(snap, 0, 1, clock.now(), CONFIG)
    assert snap.state is BreakerState.CLOSED
    assert snap.totals(clock.now(), CONFIG) == (0, 1)


def test_open_defers_then_half_opens_with_one_probe() -> None:
    clock = FrozenClock()
    snap = record_outcomes(BreakerSnapshot(host="h:80"), 0, 10, clock.now(), CONFIG)
    clock.advance(timedelta(seconds=10))
    decision, claim = admit(snap, clock.now(), CONFIG)
    assert not decision.allowed and claim is None
    assert decision.state is BreakerState.OPEN
    assert decision.retry_after == timedelta(seconds=20)
    clock.advance(timedelta(seconds=20))
    assert snap.phase(clock.now(), CONFIG) is BreakerState.HALF_OPEN
    decision, claim = admit(snap, clock.now(), CONFIG)
    assert decision.allowed and decision.probe and claim is not None
    second, none = admit(claim, clock.now(), CONFIG)  # another delivery meanwhile
    assert not second.allowed and none is None and second.state is BreakerState.HALF_OPEN
    closed = record_probe(claim, True, clock.now(), CONFIG)
    assert closed.state is BreakerState.CLOSED and closed.reopens == 0
    assert admit(closed, clock.now(), CONFIG)[0].allowed


def test_failed_probe_reopens_for_longer_up_to_the_cap() -> None:
    clock = FrozenClock()
    snap = record_outcomes(BreakerSnapshot(host="h:80"), 0, 10, clock.now(), CONFIG)
    periods = []
    for _ in range(4):
        due = snap.half_opens_at(CONFIG)
        assert due is not None
        periods.append((due - clock.now()).total_seconds())
        clock.set(due)
        _, claim = admit(snap, clock.now(), CONFIG)
        assert claim is not None
        snap = record_probe(claim, False, clock.now(), CONFIG)
        assert snap.state is BreakerState.OPEN
    assert periods == [30, 60, 100, 100]


def test_lost_probe_frees_the_slot_after_probe_timeout() -> None:
    clock = FrozenClock()
    snap = record_outcomes(BreakerSnapshot(host="h:80"), 0, 10, clock.now(), CONFIG)
    clock.advance(timedelta(seconds=30))
    _, claim = admit(snap, clock.now(), CONFIG)
    assert claim is not None
    clock.advance(timedelta(seconds=21))
    decision, reclaim = admit(claim, clock.now(), CONFIG)
    assert decision.allowed and decision.probe and reclaim is not None


def test_outcomes_while_open_are_ignored() -> None:
    clock = FrozenClock()
    snap = record_outcomes(BreakerSnapshot(host="h:80"), 0, 10, clock.now(), CONFIG)
    assert record_outcomes(snap, 50, 0, clock.now(), CONFIG) == snap


async def test_shared_between_processes_through_records() -> None:
    clock = FrozenClock()
    store = MemoryRecords(clock=clock)
    first = CircuitBreakers(store, CONFIG, clock)
    second = CircuitBreakers(store, CONFIG, clock)
    for _ in range(5):
        await first.report("h:80", False)
        await second.report("h:80", False)
    assert not (await first.admit("h:80")).allowed
    assert not (await second.admit("h:80")).allowed
    assert (await first.admit("other:80")).allowed
    clock.advance(timedelta(seconds=30))
    a, b = await first.admit("h:80"), await second.admit("h:80")
    assert sorted([a.allowed, b.allowed]) == [False, True]  # exactly one probe, by CAS
    probe_owner = first if a.allowed else second
    await probe_owner.report("h:80", True, probe=True)
    assert (await first.admit("h:80")).allowed and (await second.admit("h:80")).allowed
    [snap] = [s for s in await first.snapshots() if s.host == "h:80"]
    assert snap.state is BreakerState.CLOSED


async def test_batched_flush_and_cache_lag() -> None:
    clock = FrozenClock()
    store = MemoryRecords(clock=clock)
    config = BreakerConfig(
        min_requests=4,
        flush_interval=timedelta(seconds=1),
        cache_ttl=timedelta(seconds=1),
    )
    writer = CircuitBreakers(store, config, clock)
    reader = CircuitBreakers(store, config, clock)
    assert (await reader.admit("h:80")).allowed  # cached as closed
    for _ in range(4):
        await writer.report("h:80", False)
    assert await store.get_record("webhook_breakers", "h:80") is None  # not flushed yet
    await writer.flush()
    assert (await reader.admit("h:80")).allowed  # still within the reader's cache ttl
    clock.advance(timedelta(seconds=1))
    assert not (await reader.admit("h:80")).allowed
    await writer.aclose()
