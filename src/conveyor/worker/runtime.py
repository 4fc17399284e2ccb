"""The worker: a supervisor of small loops under one ``asyncio.TaskGroup`` (claimer,
completion buffer, lease keeper, registry heartbeat, rescuer/housekeeping, shutdown). If a
loop crashes, the group cancels the rest and ``run`` raises: the worker stops loudly, it
never limps on.

Programmatic use (the CLI, ``conveyor up``, ``conveyor.testing``)::

    worker = Worker(app, config=WorkerConfig(queues=("default",), concurrency=64))
    task = asyncio.create_task(worker.run())   # returns when stopped
    worker.request_stop()                      # graceful; a second call: immediate
    await task                                 # or: await worker.stop(grace=timedelta(...))

Shutdown has two phases: stop claiming and wait up to ``grace`` for running jobs; then
cancel the rest and release them to the queue in one call (attempt not charged). Nothing is
left in ``running``. Sync handlers cannot be interrupted: their thread runs on after its job
was released (a later attempt may overlap it: at-least-once). Cancelling ``run()`` itself is
abrupt: held jobs are rescued when their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from conveyor.app import Conveyor
from conveyor.backend import Backend
from conveyor.errors import BackendError, BackendUnavailable
from conveyor.events import EventBus, JobReleased, WorkerStarted, WorkerStopped
from conveyor.handler import Registry
from conveyor.jobs import WorkerId
from conveyor.worker.claimer import Claimer
from conveyor.worker.config import WorkerConfig
from conveyor.worker.executor import Executor, StopReason, WorkerOffload
from conveyor.worker.lease_keeper import LeaseKeeper
from conveyor.worker.outage import Backoff
from conveyor.worker.rescuer import Rescuer
from conveyor.worker.waiting import race_stop

log = logging.getLogger("conveyor.worker")
T = TypeVar("T")

# Once a second stop request has come, a backend call still in flight (a release, the
# final deregistration) gets this long before the worker gives up on it; without the bound,
# each call to a server that is down waits out the connection pool's timeout in turn.
IMMEDIATE_CALL_LIMIT = timedelta(seconds=1)


class Worker:
    """Runs the jobs of ``source``'s queues: a ``Conveyor`` app (its registry and its backend
    handle on this loop) or an open ``Backend`` with an explicit ``registry``."""

    def __init__(
        self,
        source: Conveyor | Backend,
        *,
        registry: Registry | None = None,
        config: WorkerConfig | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._app = source if isinstance(source, Conveyor) else None
        self._given_backend = None if isinstance(source, Conveyor) else source
        if registry is None:
            registry = self._app.registry if self._app is not None else Registry()
        self.registry = registry
        self.config = config or WorkerConfig()
        self.events = events or EventBus()
        self.started = asyncio.Event()  # set once claiming has begun
        self._stop_requested = asyncio.Event()
        self._immediate = asyncio.Event()
        self._stop_claiming = asyncio.Event()
        self._closing = asyncio.Event()
        self._done = asyncio.Event()
        self._grace = self.config.grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: Executor | None = None
        self._background: list[asyncio.Task[None]] = []
        self._ran = False
        self.released = 0

    @property
    def worker_id(self) -> WorkerId:
        return self.config.worker_id

    @property
    def running(self) -> int:
        """Jobs occupying a slot right now."""
        return 0 if self._executor is None else self._executor.active

    @property
    def leases_held(self) -> int:
        """Jobs whose lease this worker holds: in their handler or their outcome being
        written. Never more than ``concurrency`` while claiming."""
        return 0 if self._executor is None else len(self._executor.held)

    @property
    def pending_writes(self) -> int:
        """Completions buffered and not yet written."""
        return 0 if self._executor is None else len(self._executor.completer)

    def request_stop(self, immediate: bool = False, grace: timedelta | None = None) -> None:
        """Ask the worker to stop: gracefully, or (``immediate``, or a second request) at
        once. Safe from any thread and before ``run`` started."""
        loop = self._loop
        if loop is not None and loop.is_running() and not self._on_loop(loop):
            loop.call_soon_threadsafe(self.request_stop, immediate, grace)
            return
        if grace is not None:
            self._grace = grace
        if immediate or self._stop_requested.is_set():
            self._immediate.set()
        self._stop_requested.set()

    @staticmethod
    def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    async def stop(self, grace: timedelta | None = None) -> None:
        """Request a graceful stop and wait until ``run`` has returned."""
        self.request_stop(grace=grace)
        await self._done.wait()

    async def _open(self) -> Backend:
        if self._given_backend is not None:
            return self._given_backend
        assert self._app is not None
        return await self._app.backend()

    async def run(self) -> None:
        """Run until stopped. Raises if a loop crashed (the first error, unwrapped)."""
        if self._ran:
            raise RuntimeError("a Worker runs once; create a new one")
        self._ran = True
        self._loop = asyncio.get_running_loop()
        try:
            backend = await self._open()
            await self._run(backend)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from group
            raise
        finally:
            self._done.set()

    async def _run(self, backend: Backend) -> None:
        config = self.config
        if not self.registry.kinds():
            log.warning("worker %s has no handlers: the jobs it claims fail", config.worker_id)
        offload = WorkerOffload(
            config.thread_pool_size or config.concurrency,
            config.process_pool_size or os.cpu_count() or 1,
        )
        executor = self._executor = Executor(backend, self.registry, config, self.events, offload)
        keeper = LeaseKeeper(
            backend, executor, self.registry, config, self.events, started_at=await backend.now()
        )
        await backend.upsert_worker(keeper.info())
        started = WorkerStarted(config.worker_id, tuple(config.queues), config.concurrency)
        self.events.emit(started)
        try:
            async with asyncio.TaskGroup() as tg:
                claimer = Claimer(backend, executor, config, self.events, tg.create_task)
                claiming = tg.create_task(claimer.run(self._stop_claiming), name="claimer")
                writing = tg.create_task(executor.completer.run(), name="completer")
                rescuer = Rescuer(backend, self.registry, config, self.events)
                self._background = [
                    tg.create_task(keeper.run(self._closing), name="lease-keeper"),
                    tg.create_task(keeper.run_registry(self._closing), name="registry"),
                    tg.create_task(rescuer.run(self._closing), name="rescuer"),
                ]
                shutdown = self._shutdown(backend, executor, claiming, writing)
                tg.create_task(shutdown, name="shutdown")
                self.started.set()
        finally:
            offload.close()
            with contextlib.suppress(BackendError):
                await self._bounded_once_immediate(backend.remove_worker(config.worker_id))
            self.events.emit(WorkerStopped(config.worker_id, self.released))

    async def _shutdown(
        self,
        backend: Backend,
        executor: Executor,
        claiming: asyncio.Task[None],
        writing: asyncio.Task[None],
    ) -> None:
        await self._stop_requested.wait()
        self._stop_claiming.set()
        await claiming  # a claim in flight finishes; its jobs start and are handled below
        if not self._immediate.is_set() and executor.active:
            await self._grace_period(executor)
        stopped = executor.stop_running(StopReason.SHUTDOWN)
        await asyncio.gather(*stopped, return_exceptions=True)
        # Outcomes being written finish too, however long the backend is away; a second stop
        # request gives up on them (their jobs are rescued when their leases expire).
        await race_stop(executor.idle.wait(), self._immediate)
        await self._release(backend, executor)
        if self._immediate.is_set():
            executor.completer.give_up_when_unavailable()
            executor.abandon_writes()
        executor.completer.close()
        await writing
        self._closing.set()
        if self._immediate.is_set():
            # Renewals, the registry heartbeat and rescues are moot now; one blocked on a
            # server that is down would hold the exit for the pool's connect timeout.
            for task in self._background:
                task.cancel()

    async def _bounded_once_immediate(self, call: Coroutine[object, object, T]) -> T:
        """Await a backend call that must not be cut short by a graceful stop; once a
        second stop request has come (before or during the call), give it at most
        ``IMMEDIATE_CALL_LIMIT`` more, then raise ``BackendUnavailable``. The call is
        left to finish or fail on its own: a release or deregistration that lands late
        is harmless, one that does not is covered by lease expiry."""
        task = asyncio.ensure_future(call)
        if not self._immediate.is_set():
            await race_stop(asyncio.shield(task), self._immediate)
        if not task.done():
            await asyncio.wait((task,), timeout=IMMEDIATE_CALL_LIMIT.total_seconds())
        if not task.done():
            task.add_done_callback(_consume)
            raise BackendUnavailable("stopping at once: gave up waiting for the backend")
        return task.result()

    async def _grace_period(self, executor: Executor) -> None:
        grace = self._grace.total_seconds()
        log.info("stopping: waiting up to %gs for %d running jobs", grace, executor.active)
        idle = asyncio.ensure_future(executor.idle.wait())
        immediate = asyncio.ensure_future(self._immediate.wait())
        try:
            await asyncio.wait((idle, immediate), timeout=grace, return_when="FIRST_COMPLETED")
        finally:
            idle.cancel()
            immediate.cancel()

    async def _release(self, backend: Backend, executor: Executor) -> None:
        stopped = executor.shutdown
        if not stopped:
            return
        for rj in stopped:
            executor.forget(rj)
        backoff = Backoff()
        while True:
            try:
                leases = [rj.lease for rj in stopped]
                lost = set(await self._bounded_once_immediate(backend.release(leases)))
                break
            except BackendUnavailable as exc:
                if self._immediate.is_set():
                    log.warning(
                        "stopping at once: %d jobs not handed back (%s); they are rescued "
                        "when their leases expire",
                        len(stopped),
                        exc,
                    )
                    return
                await race_stop(backoff.wait("release", exc), self._immediate)
        for rj in stopped:
            if rj.job.id not in lost:
                self.released += 1
                self.events.emit(JobReleased(*rj.key))


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call given up on, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()
