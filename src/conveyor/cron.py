"""Periodic tasks: crontab expressions turned into due ticks, and the enqueue of each tick
with one idempotency key, so that any number of workers enqueue every tick exactly once
without a leader (``cron:{kind}:{tick}``; the backend's idempotent enqueue does the rest).

Ticks are computed from the backend's clock. Who calls it: ``Conveyor.task`` validates
expressions; the worker's housekeeping loop (``conveyor.worker.rescuer``) calls
``CronScheduler.enqueue_due`` every second or so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from conveyor.backend import JobStore
from conveyor.errors import ConfigurationError
from conveyor.handler import Registration
from conveyor.jobs import NewJob

DEFAULT_LOOKBACK = timedelta(minutes=1)
MAX_TICKS_PER_CALL = 100  # a worker that slept for days does not flood the queue


def validate_cron(expression: str) -> None:
    # croniter is imported only where crontab expressions are used (it costs 3.5 MiB of RSS).
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ConfigurationError(f"invalid cron expression {expression!r}")


def ticks_between(expression: str, after: datetime, until: datetime) -> list[datetime]:
    """Ticks ``t`` with ``after < t <= until`` (aware UTC), oldest first, at most
    ``MAX_TICKS_PER_CALL`` (the newest ones)."""
    from croniter import croniter

    itr = croniter(expression, after.astimezone(UTC))
    ticks: list[datetime] = []
    while True:
        tick = itr.get_next(datetime)
        if tick > until:
            break
        ticks.append(tick.astimezone(UTC))
    return ticks[-MAX_TICKS_PER_CALL:]


def idempotency_key(kind: str, tick: datetime) -> str:
    return f"cron:{kind}:{tick.astimezone(UTC).isoformat()}"


@dataclass(slots=True)
class _Schedule:
    registration: Registration
    expression: str
    checked_until: datetime | None = None


class CronScheduler:
    """Enqueues the due ticks of every periodic kind. On the first call it enqueues the
    latest tick of the last ``lookback`` (one that fell while no worker ran, or while this
    one restarted, still runs once; its key makes a repeat harmless)."""

    def __init__(
        self, registrations: Iterable[Registration], lookback: timedelta = DEFAULT_LOOKBACK
    ) -> None:
        self._schedules = [
            _Schedule(r, r.options.cron) for r in registrations if r.options.cron is not None
        ]
        self._lookback = lookback

    def __bool__(self) -> bool:
        return bool(self._schedules)

    async def enqueue_due(self, store: JobStore, now: datetime) -> int:
        """Enqueue every tick due up to ``now`` not seen yet; returns how many jobs this call
        created (ticks another worker enqueued first are not counted)."""
        jobs: list[NewJob] = []
        for schedule in self._schedules:
            if schedule.checked_until is None:  # first look: only the latest missed tick
                due = ticks_between(schedule.expression, now - self._lookback, now)[-1:]
            else:
                due = ticks_between(schedule.expression, schedule.checked_until, now)
            for tick in due:
                jobs.append(self._new_job(schedule.registration, tick))
        if not jobs:
            self._advance(now)
            return 0
        outcome = await store.enqueue(jobs)
        self._advance(now)
        return sum(1 for e in outcome if e.created)

    def _advance(self, now: datetime) -> None:
        for schedule in self._schedules:
            schedule.checked_until = now

    @staticmethod
    def _new_job(registration: Registration, tick: datetime) -> NewJob:
        options = registration.options
        return NewJob(
            kind=registration.kind,
            payload={},
            queue=options.queue,
            priority=options.priority,
            run_at=tick,
            max_attempts=options.max_attempts,
            timeout=options.timeout,
            idempotency_key=idempotency_key(registration.kind, tick),
        )
