"""Cron: ticks from crontab expressions, one idempotency key per tick, and the scheduler
enqueueing each tick once however many schedulers run (memory engine, frozen clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor import Conveyor, FrozenClock
from conveyor.backend import ListRequest
from conveyor.cron import CronScheduler, idempotency_key, ticks_between, validate_cron
from conveyor.errors import ConfigurationError

START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)


def test_ticks_between_is_half_open() -> None:
    ticks = ticks_between("*/5 * * * *", START - timedelta(minutes=10, seconds=30), START)
    assert ticks == [datetime(2029, 12, 31, 23, 55, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)]
    assert ticks_between("*/5 * * * *", datetime(2030, 1, 1, tzinfo=UTC), START) == []


def test_key_names_kind_and_tick() -> None:
    assert (
        idempotency_key("a.b", datetime(2030, 1, 1, tzinfo=UTC))
        == "cron:a.b:2030-01-01T00:00:00+00:00"
    )
    with pytest.raises(ConfigurationError):
        validate_cron("61 * * * *")


async def test_schedulers_enqueue_each_tick_once() -> None:
    clock = FrozenClock(START)
    app = Conveyor("memory://", clock=clock)

    @app.task(cron="* * * * *")
    def minutely() -> None: ...

    backend = await app.backend()
    schedulers = [CronScheduler(app.registry) for _ in range(3)]
    created = [await s.enqueue_due(backend, clock.now()) for s in schedulers]
    assert created == [1, 0, 0]  # the latest missed tick, once
    clock.advance(timedelta(minutes=3))
    created = [await s.enqueue_due(backend, clock.now()) for s in schedulers]
    assert created == [3, 0, 0]
    page = await backend.list_jobs(ListRequest(limit=100))
    keys = sorted(j.idempotency_key or "" for j in page.jobs)
    assert len(keys) == 4 == len(set(keys))
    assert keys[-1] == idempotency_key(minutely.name, datetime(2030, 1, 1, 0, 3, tzinfo=UTC))
    await app.aclose()
