"""The claim loop: takes jobs in batches of at most the free slots and hands them to the
executor. Each claim also writes the completions waiting in the buffer (one
``complete_and_claim`` call) and may count the slots they free. Between claims it waits for
work: a notification (engines with ``Capability.NOTIFY``) or, always, a jittered poll as the
backstop. On engines with ``Capability.HANDOFF`` a claim that finds fewer jobs than free slots
leaves a standing claim, and the wait is for the job a write hands to it (no claim round trip
after the wake-up); a stop withdraws it, and a job handed meanwhile starts like a claimed
one. A claim in flight is never cancelled (its jobs would be stranded in ``running``);
stopping takes effect between claims. Who calls it: the runtime, as one loop of its TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta

from conveyor.backend import Backend, Capability, ClaimedJob, ClaimRequest, Completion
from conveyor.errors import BackendUnavailable
from conveyor.events import EventBus, JobClaimed
from conveyor.ids import new_token
from conveyor.worker.config import WorkerConfig
from conveyor.worker.executor import Executor
from conveyor.worker.outage import Backoff
from conveyor.worker.waiting import jittered, race_stop

# A standing claim outlives the wait by this much, so that it never expires under a live
# worker that is a little late; a dead worker's expires this long after its wait would have.
STANDBY_MARGIN = timedelta(seconds=1)


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
        # A stop also wakes the wait for a free slot: that wait is on every busy cycle's path,
        # so it is one event, not a race of two tasks (three loop iterations per wake-up).
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self._executor.slots_changed.set())
        try:
            await self._loop(stop)
        finally:
            stopping.cancel()

    async def _loop(self, stop: asyncio.Event) -> None:
        executor = self._executor
        buffer = executor.completer
        changed = executor.slots_changed
        handoff = Capability.HANDOFF in self._backend.capabilities
        while not stop.is_set():
            free = executor.free_slots
            if free <= 0 and not len(buffer):
                changed.clear()
                await changed.wait()
                continue
            if free <= 0:
                # Every slot is busy and some jobs just finished: let the others finishing in
                # this same loop iteration join, so that one call swaps them all.
                await asyncio.sleep(0)
            done = buffer.take()
            limit = free + len(done)
            timeout = timedelta(seconds=jittered(self._config.poll_interval))
            standby = new_token(8) if handoff else None
            claimed = await self._claim(done, limit, standby, timeout)
            if claimed is None:
                continue
            self._start(claimed)
            if len(claimed) < limit:
                if standby is None:
                    await self._wait_for_work(stop, timeout)
                else:
                    await self._wait_for_handoff(standby, stop, timeout)

    def _start(self, claimed: list[ClaimedJob]) -> None:
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
            self._executor.start(job, self._spawn)

    async def _claim(
        self, done: list[Completion], limit: int, standby: str | None, timeout: timedelta
    ) -> list[ClaimedJob] | None:
        """Write ``done`` and claim up to ``limit`` jobs in one call; None after an outage
        (``done`` is back in the buffer)."""
        config = self._config
        request = ClaimRequest(
            config.worker_id,
            config.queues,
            limit,
            config.lease,
            standby=standby,
            standby_for=timeout + STANDBY_MARGIN,
        )
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

    async def _wait_for_work(self, stop: asyncio.Event, timeout: timedelta) -> None:
        try:
            await race_stop(self._backend.wait_for_work(self._config.queues, timeout), stop)
        except BackendUnavailable as exc:
            await self._backoff.wait("wait_for_work", exc)

    async def _wait_for_handoff(
        self, standby: str, stop: asyncio.Event, timeout: timedelta
    ) -> None:
        # The wait runs in this task, so that a handed job starts in the same loop iteration
        # that its arrival wakes (no hop through another task). A stop withdraws the standing
        # claim from a watcher task, which ends the wait at once; a job handed meanwhile
        # comes back from either call and starts, and the shutdown treats it like any other.
        backend, queues = self._backend, self._config.queues
        withdrawn: list[ClaimedJob] = []

        async def withdraw_on_stop() -> None:
            await stop.wait()
            withdrawn.extend(await backend.wait_for_handoff(standby, queues, timedelta(0)))

        watcher = asyncio.ensure_future(withdraw_on_stop())
        handed: list[ClaimedJob] = []
        try:
            try:
                handed = await backend.wait_for_handoff(standby, queues, timeout)
            except BackendUnavailable as exc:
                await self._backoff.wait("wait_for_handoff", exc)
        except BaseException:
            watcher.cancel()  # torn down: the cancelled wait withdrew the claim itself
            raise
        if not stop.is_set():
            watcher.cancel()  # still parked in stop.wait(): nothing to withdraw
        else:
            # The withdrawal, under way or done, returns a job handed before it. If it
            # failed, the wait above ended by its timeout (a poll interval) or its error.
            with contextlib.suppress(BackendUnavailable):
                await watcher
            handed += withdrawn
        if handed:
            self._start(handed)
            # Let the handed job start before the next claim is built and sent (~0.1 ms):
            # its pickup latency is what the hand-off is for.
            await asyncio.sleep(0)
