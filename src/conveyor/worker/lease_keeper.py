"""The worker's heartbeats: every ``lease / 3`` one ``renew`` call extends every lease this
worker holds; leases reported lost stop their handlers (and their outcome is never written),
cancel requests reach the handler. Every few seconds the worker's registry entry is
refreshed with the kinds it can run and its load. Who calls it: the runtime's TaskGroup.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import datetime

from conveyor.backend import Backend, WorkerInfo
from conveyor.errors import BackendUnavailable
from conveyor.events import ActiveJobs, EventBus
from conveyor.handler import Registry
from conveyor.worker.config import WorkerConfig
from conveyor.worker.executor import Executor, StopReason
from conveyor.worker.outage import Backoff
from conveyor.worker.waiting import jittered, sleep_or_stop


class LeaseKeeper:
    def __init__(
        self,
        backend: Backend,
        executor: Executor,
        registry: Registry,
        config: WorkerConfig,
        events: EventBus,
        *,
        started_at: datetime,
    ) -> None:
        self._backend = backend
        self._executor = executor
        self._registry = registry
        self._config = config
        self._events = events
        self._started_at = started_at

    async def run(self, closing: asyncio.Event) -> None:
        """Renew loop; returns once ``closing`` is set."""
        backoff = Backoff()
        interval = self._config.renew_interval.total_seconds()
        while not await sleep_or_stop(closing, interval):
            try:
                await self.renew_once()
            except BackendUnavailable as exc:
                await backoff.wait("renew", exc)
                continue
            backoff.reset()

    async def renew_once(self) -> None:
        executor = self._executor
        leases = executor.running_leases()
        if not leases:
            return
        outcome = await self._backend.renew(leases, self._config.lease)
        for job_id in outcome.lost:
            running = executor.held.get(job_id)
            if running is not None and not running.deciding:
                running.stop(StopReason.LEASE_LOST)
        for job_id in outcome.cancel_requested:
            running = executor.held.get(job_id)
            if running is not None:
                running.stop(StopReason.CANCEL_REQUESTED)

    def info(self) -> WorkerInfo:
        config = self._config
        return WorkerInfo(
            id=config.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(config.queues),
            kinds=self._registry.kinds(),
            concurrency=config.concurrency,
            running=self._executor.active,
            started_at=self._started_at,
        )

    async def run_registry(self, closing: asyncio.Event) -> None:
        """Refresh this worker's registry entry until ``closing`` is set."""
        backoff = Backoff()
        while not await sleep_or_stop(closing, jittered(self._config.registry_interval, 0.8)):
            try:
                await self._backend.upsert_worker(self.info())
            except BackendUnavailable as exc:
                await backoff.wait("upsert_worker", exc)
                continue
            backoff.reset()
            self._events.emit(ActiveJobs(self._config.worker_id, self._executor.active))
