"""Test your own handlers against a real worker: ``conveyor.testing.run_worker`` runs the
real runtime (claims, leases, retries, completions) on an app, by default on a fresh
in-memory store, and hands back a harness to wait on outcomes without sleeping::

    async def test_send_email() -> None:
        async with run_worker(app, backend_url="memory://") as w:
            job = await send_email.enqueue_async(to="a@example.com", subject="hi")
            done = await w.wait_for(job.id)          # a final status, or TimeoutError
            assert done.status == "completed"
            await w.drain()                          # nothing claimable left, nothing running

Every event the worker emits is recorded in ``w.events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

from conveyor.app import Conveyor
from conveyor.backend import Backend
from conveyor.events import Event, EventBus
from conveyor.jobs import FINAL_STATUSES, Job, JobId, JobStatus
from conveyor.worker.config import WorkerConfig
from conveyor.worker.runtime import Worker

E = TypeVar("E", bound=Event)
DEFAULT_WAIT = timedelta(seconds=10)
POLL_SECONDS = 0.01

TEST_CONFIG = WorkerConfig(
    poll_interval=timedelta(milliseconds=50),
    rescue_interval=timedelta(milliseconds=500),
    registry_interval=timedelta(seconds=1),
    grace=timedelta(seconds=5),
    default_timeout=timedelta(seconds=60),
)


class WorkerHarness:
    def __init__(self, app: Conveyor, worker: Worker, backend: Backend) -> None:
        self.app = app
        self.worker = worker
        self.backend = backend
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        worker.events.subscribe(self._record)

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def _until(self, check: Callable[[], object], timeout: timedelta, what: str) -> None:
        deadline = time.monotonic() + timeout.total_seconds()
        while True:
            self._changed.clear()
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what} within {timeout.total_seconds():g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, POLL_SECONDS * 5))

    async def wait_for(
        self, job_id: str, *statuses: JobStatus | str, timeout: timedelta = DEFAULT_WAIT
    ) -> Job:
        """The job once its status is one of ``statuses`` (default: any final status)."""
        wanted = {JobStatus(s) for s in statuses} or set(FINAL_STATUSES)
        found: list[Job] = []

        async def reached() -> bool:
            job = await self.backend.get(JobId(job_id))
            if job is not None and job.status in wanted:
                found.append(job)
                return True
            return False

        names = ", ".join(sorted(s.value for s in wanted))
        await self._until(reached, timeout, f"job {job_id} did not reach {names}")
        return found[0]

    async def drain(self, timeout: timedelta = DEFAULT_WAIT) -> None:
        """Wait until the worker's queues have no job claimable now and nothing runs."""
        queues = set(self.worker.config.queues)

        async def drained() -> bool:
            if self.worker.running or self.worker.pending_writes:
                return False
            for stats in await self.backend.stats():
                if stats.queue not in queues:
                    continue
                if stats.oldest_queued_at is not None or stats.counts.get(JobStatus.RUNNING):
                    return False
            return True

        await self._until(drained, timeout, "the worker's queues were not drained")

    async def wait_for_event(
        self,
        kind: type[E],
        predicate: Callable[[E], bool] = lambda _: True,
        timeout: timedelta = DEFAULT_WAIT,
    ) -> E:
        """The first recorded event of type ``kind`` matching ``predicate`` (past or future)."""
        found: list[E] = []

        def seen() -> bool:
            found.extend(e for e in self.events if isinstance(e, kind) and predicate(e))
            return bool(found)

        await self._until(seen, timeout, f"no {kind.__name__} event")
        return found[0]

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def run_worker(
    app: Conveyor,
    *,
    backend_url: str | None = None,
    config: WorkerConfig | None = None,
    queues: tuple[str, ...] | None = None,
    concurrency: int | None = None,
    events: EventBus | None = None,
) -> AsyncIterator[WorkerHarness]:
    """Run a real worker for ``app`` on this loop for the ``async with`` block. With
    ``backend_url``, the app is pointed at that store for the block (and back after). On
    exit the worker stops gracefully; a crashed worker re-raises its error here."""
    config = config or TEST_CONFIG
    if queues is not None:
        config = replace(config, queues=queues)
    elif config is TEST_CONFIG:
        config = replace(config, queues=_task_queues(app))
    if concurrency is not None:
        config = replace(config, concurrency=concurrency)
    previous_url = app.database_url
    if backend_url is not None:
        await app.aclose()
        app.use_database_url(backend_url)
    try:
        backend = await app.backend()
        worker = Worker(app, config=config, events=events)
        harness = WorkerHarness(app, worker, backend)
        running = asyncio.create_task(worker.run())
        await _started(worker, running)
        try:
            yield harness
        finally:
            worker.request_stop()
            await running
    finally:
        if backend_url is not None:
            await app.aclose()
            app.use_database_url(previous_url)


def _task_queues(app: Conveyor) -> tuple[str, ...]:
    return tuple(sorted({r.options.queue for r in app.registry})) or ("default",)


async def _started(worker: Worker, running: asyncio.Task[None]) -> None:
    started = asyncio.ensure_future(worker.started.wait())
    await asyncio.wait((started, running), return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        started.cancel()
        running.result()  # raises the worker's error
        raise RuntimeError("the worker stopped before it started")
