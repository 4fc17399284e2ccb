"""The claim loop: takes jobs in batches of at most the free slots and hands them to the
executor. Between claims it waits for work: a notification (engines with
``Capability.NOTIFY``) or, always, a jittered poll as the backstop. A claim in flight is never
cancelled (its jobs would be stranded in ``running``); stopping takes effect between claims.
Who calls it: the runtime, as one loop of its TaskGroup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from conveyor.backend import Backend, ClaimedJob, ClaimRequest
from conveyor.errors import BackendUnavailable
from conveyor.events import EventBus, JobClaimed
from conveyor.worker.config import WorkerConfig
from conveyor.worker.executor import Executor
from conveyor.worker.outage import Backoff
from conveyor.worker.waiting import jittered, race_stop


def pickup(claimed: ClaimedJob) -> timedelta:
    job = claimed.job
    if job.started_at is None:
        return timedelta(0)
    return max(timedelta(0), job.started_at - max(job.run_at, job.created_at))


class Claimer:
    def __init__(
        self,
        backend: Backend,
        executor: Executor,
        config: WorkerConfig,
        events: EventBus,
        spawn: Callable[..., asyncio.Task[None]],
    ) -> None:
        self._backend = backend
        self._executor = executor
        self._config = config
        self._events = events
        self._spawn = spawn
        self._backoff = Backoff()

    async def run(self, stop: asyncio.Event) -> None:
        executor = self._executor
        while not stop.is_set():
            free = executor.free_slots
            if free <= 0:
                executor.slot_freed.clear()
                await race_stop(executor.slot_freed.wait(), stop)
                continue
            claimed = await self._claim(free)
            if claimed is None:
                continue
            for job in claimed:
                self._events.emit(
                    JobClaimed(
                        job.job.id,
                        job.job.queue,
                        job.job.kind,
                        job.lease.attempt,
                        worker=self._config.worker_id,
                        pickup=pickup(job),
                    )
                )
                executor.start(job, self._spawn)
            if len(claimed) < free:
                await self._wait_for_work(stop)

    async def _claim(self, free: int) -> list[ClaimedJob] | None:
        config = self._config
        request = ClaimRequest(config.worker_id, config.queues, free, config.lease)
        try:
            claimed = await self._backend.claim(request)
        except BackendUnavailable as exc:
            await self._backoff.wait("claim", exc)
            return None
        self._backoff.reset()
        return claimed

    async def _wait_for_work(self, stop: asyncio.Event) -> None:
        timeout = timedelta(seconds=jittered(self._config.poll_interval))
        try:
            await race_stop(self._backend.wait_for_work(self._config.queues, timeout), stop)
        except BackendUnavailable as exc:
            await self._backoff.wait("wait_for_work", exc)
