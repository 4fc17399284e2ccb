"""Housekeeping that every worker runs, with no leader, because each step is safe to run
concurrently: rescue of expired leases every few seconds, the retention purge every few
minutes, and the enqueue of due cron ticks (one idempotency key per tick). Who calls it: the
runtime's TaskGroup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from conveyor.backend import Backend
from conveyor.cron import CronScheduler
from conveyor.errors import BackendUnavailable
from conveyor.events import EventBus, JobsRescued
from conveyor.handler import Registry
from conveyor.worker.config import WorkerConfig
from conveyor.worker.outage import Backoff
from conveyor.worker.waiting import jittered, sleep_or_stop

log = logging.getLogger("conveyor.worker")


@dataclass(slots=True)
class _Chore:
    name: str
    interval: float
    action: Callable[[], Awaitable[None]]
    due: float


def jittered_factor() -> float:
    return jittered(timedelta(seconds=1))


class Rescuer:
    def __init__(
        self, backend: Backend, registry: Registry, config: WorkerConfig, events: EventBus
    ) -> None:
        self._backend = backend
        self._config = config
        self._events = events
        self._cron = CronScheduler(registry) if config.cron else None
        now = time.monotonic()
        self._chores = [
            _Chore("rescue", config.rescue_interval.total_seconds(), self.rescue_once, now)
        ]
        if config.retention is not None:
            first = now + jittered(config.rescue_interval)
            interval = config.purge_interval.total_seconds()
            self._chores.append(_Chore("purge", interval, self.purge_once, first))
        if self._cron:
            interval = config.cron_interval.total_seconds()
            self._chores.append(_Chore("cron", interval, self.cron_once, now))

    async def run(self, closing: asyncio.Event) -> None:
        backoff = Backoff()
        while True:
            chore = min(self._chores, key=lambda c: c.due)
            if await sleep_or_stop(closing, max(0.0, chore.due - time.monotonic())):
                return
            try:
                await chore.action()
            except BackendUnavailable as exc:
                await backoff.wait(chore.name, exc)
                continue
            backoff.reset()
            # Rescue and purge are spread apart across workers; cron keeps its beat.
            step = chore.interval if chore.name == "cron" else chore.interval * jittered_factor()
            chore.due = time.monotonic() + step

    async def rescue_once(self) -> None:
        outcome = await self._backend.rescue(limit=1000, max_rescues=self._config.max_rescues)
        counts = (len(outcome.requeued), len(outcome.failed), len(outcome.cancelled))
        if any(counts):
            self._events.emit(JobsRescued(*counts))

    async def purge_once(self) -> None:
        if self._config.retention is not None:
            deleted = await self._backend.purge(self._config.retention)
            if deleted:
                log.info("retention: deleted %d finished jobs", deleted)

    async def cron_once(self) -> None:
        if self._cron:
            await self._cron.enqueue_due(self._backend, await self._backend.now())
