"""The claim loop: takes jobs in batches of at most the free slots and hands them to the
executor. Each claim also writes the completions waiting in the buffer (one
``complete_and_claim`` call) and may count the slots they free. Between claims it waits for
work: a notification (engines with ``Capability.NOTIFY``) or, always, a jittered poll as the
backstop. A claim in flight is never cancelled (its jobs would be stranded in ``running``);
stopping takes effect between claims. Who calls it: the runtime, as one loop of its TaskGroup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from conveyor.backend import Backend, ClaimedJob, ClaimRequest, Completion
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
        buffer = executor.completer
        while not stop.is_set():
            free = executor.free_slots
            if free <= 0 and not len(buffer):
                executor.slots_changed.clear()
                await race_stop(executor.slots_changed.wait(), stop)
                continue
            if free <= 0:
                # Every slot is busy and some jobs just finished: let the others finishing in
                # this same loop iteration join, so that one call swaps them all.
                await asyncio.sleep(0)
            done = buffer.take()
            limit = free + len(done)
            claimed = await self._claim(done, limit)
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
            if len(claimed) < limit:
                await self._wait_for_work(stop)

    async def _claim(self, done: list[Completion], limit: int) -> list[ClaimedJob] | None:
        """Write ``done`` and claim up to ``limit`` jobs in one call; None after an outage
        (``done`` is back in the buffer)."""
        config = self._config
        request = ClaimRequest(config.worker_id, config.queues, limit, config.lease)
        buffer = self._executor.completer
        try:
            lost, claimed = await self._backend.complete_and_claim(done, request)
        except BackendUnavailable as exc:
            buffer.put_back(done)
            await self._backoff.wait("claim", exc)
            return None
        except BaseException:
            buffer.put_back(done)
            raise
        self._backoff.reset()
        if done:
            buffer.written(done, frozenset(lost))
        return claimed

    async def _wait_for_work(self, stop: asyncio.Event) -> None:
        timeout = timedelta(seconds=jittered(self._config.poll_interval))
        try:
            await race_stop(self._backend.wait_for_work(self._config.queues, timeout), stop)
        except BackendUnavailable as exc:
            await self._backoff.wait("wait_for_work", exc)
