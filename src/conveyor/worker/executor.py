"""The executor: runs each claimed job's handler under its timeout, turns what happened into
the job's outcome, and writes it (completions through the batch buffer, failures directly,
both fenced by the lease and shielded from cancellation).

Outcomes, in order of precedence: the job was stopped by the worker (lease lost -> nothing
written; cancel requested -> ``fail``, which the backend turns into ``cancelled``; shutdown ->
released by the runtime) > timeout > ``Discard`` > ``Retry`` > other exceptions (retried by
the task's ``RetryPolicy`` while ``retry_on``/``no_retry_on`` and ``max_attempts`` allow) >
success. An unknown kind fails on its first attempt. Who calls it: the claimer (``start``),
the lease keeper (``stop``), the runtime (shutdown).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from conveyor.backend import Backend, ClaimedJob, Completion, FailRequest, Lease
from conveyor.errors import BackendUnavailable, LeaseLost, UnknownKind
from conveyor.events import (
    EventBus,
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobTimedOut,
    LeaseLostEvent,
)
from conveyor.handler import Discard, JobContext, ProcessTarget, Registration, Registry, Retry
from conveyor.jobs import AttemptError, Job, JobId, JobStatus, JSONObject, JSONValue
from conveyor.worker.completer import CompletionBuffer
from conveyor.worker.config import WorkerConfig
from conveyor.worker.outage import Backoff
from conveyor.worker.process_pool import ProcessPool, RemoteTaskError

log = logging.getLogger("conveyor.worker")
T = TypeVar("T")
MAX_TRACEBACK_CHARS = 16_000


class StopReason(StrEnum):
    CANCEL_REQUESTED = "cancel_requested"
    LEASE_LOST = "lease_lost"
    SHUTDOWN = "shutdown"


class WorkerOffload:
    """The ``Offload`` the worker hands to handlers: a bounded thread pool and a killable
    process pool (started on first use)."""

    def __init__(self, threads: int, processes: int) -> None:
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="conveyor-job")
        self._processes = processes
        self._pool: ProcessPool | None = None

    async def in_thread(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._threads, context.run, fn)

    async def in_process(self, target: ProcessTarget, kwargs: JSONObject) -> JSONValue:
        if self._pool is None:
            self._pool = ProcessPool(self._processes)
        return await self._pool.run(target, kwargs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._threads.shutdown(wait=False, cancel_futures=True)


@dataclass(eq=False)
class RunningJob:
    """A job whose lease this worker holds, from claim until its outcome is written."""

    claimed: ClaimedJob
    registration: Registration | None
    ctx: JobContext
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    deciding: bool = False  # the handler is done; its outcome is being written
    buffered: bool = False  # its completion waits in the buffer; it keeps its slot till written
    expired: bool = False  # its timeout elapsed while the handler ran

    @property
    def job(self) -> Job:
        return self.claimed.job

    @property
    def lease(self) -> Lease:
        return self.claimed.lease

    @property
    def key(self) -> tuple[JobId, str, str, int]:
        """The fields every ``JobEvent`` starts with: id, queue, kind, attempt."""
        job = self.job
        return (job.id, job.queue, job.kind, self.lease.attempt)

    def stop(self, reason: StopReason) -> None:
        """Ask the handler to stop; only the first reason counts."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.ctx.cancelled.set()
        if self.task is not None and not self.deciding and not self.task.done():
            self.task.cancel()

    def elapsed(self) -> timedelta:
        return timedelta(seconds=time.monotonic() - self.started)


def qualified_name(exc: BaseException) -> str:
    if isinstance(exc, RemoteTaskError):
        return exc.type_name
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def attempt_error(lease: Lease, at: datetime, exc: BaseException | None, **kw: str) -> AttemptError:
    if exc is None:
        return AttemptError(lease.attempt, at, kw["type"], kw["message"], kw.get("traceback"))
    remote = getattr(exc, "remote_traceback", None)
    tb = remote if isinstance(remote, str) else "".join(traceback.format_exception(exc))
    # A handler may attach JSON details to what it raises (HTTP status, latency ...).
    details = getattr(exc, "details", None)
    return AttemptError(
        attempt=lease.attempt,
        at=at,
        type=kw.get("type", qualified_name(exc)),
        message=kw.get("message", str(exc)),
        traceback=tb[-MAX_TRACEBACK_CHARS:],
        details=details if isinstance(details, dict) else None,
    )


class Executor:
    def __init__(
        self,
        backend: Backend,
        registry: Registry,
        config: WorkerConfig,
        events: EventBus,
        offload: WorkerOffload,
    ) -> None:
        self.backend = backend
        self.registry = registry
        self.config = config
        self.events = events
        self.offload = offload
        self.held: dict[JobId, RunningJob] = {}  # leases we hold (handler or write pending)
        # Jobs occupying a slot: from claim until their outcome is written (a buffered
        # completion included), so this worker never holds more leases than its concurrency.
        self.active = 0
        # Set when a slot is freed or a finished job's completion is buffered: either way the
        # claimer may claim again (buffered completions go back in the claim's own call).
        self.slots_changed = asyncio.Event()
        self.idle = asyncio.Event()  # set when nothing occupies a slot
        self.idle.set()
        self.shutdown: list[RunningJob] = []  # stopped by shutdown; released in one call
        self._completing: dict[str, RunningJob] = {}  # lease token -> job, until written
        self._loop = asyncio.get_running_loop()
        self.completer = CompletionBuffer(
            backend, self._completed, config.completion_flush_interval, config.completion_batch
        )

    @property
    def free_slots(self) -> int:
        return self.config.concurrency - self.active

    def start(self, claimed: ClaimedJob, spawn: Callable[..., asyncio.Task[None]]) -> None:
        registration = self.registry.get(claimed.job.kind)
        ctx = JobContext(claimed.job, claimed.lease, self.backend, self.offload)
        running = RunningJob(claimed, registration, ctx)
        stale = self.held.get(claimed.job.id)
        if stale is not None:  # we were handed the job again: our older lease is lost
            stale.stop(StopReason.LEASE_LOST)
        self.held[claimed.job.id] = running
        self.active += 1
        self.idle.clear()
        running.task = spawn(self._run(running))

    def _forget(self, rj: RunningJob) -> None:
        if self.held.get(rj.job.id) is rj:  # a newer attempt of the job may be held now
            del self.held[rj.job.id]

    def _free_slot(self) -> None:
        self.active -= 1
        self.slots_changed.set()
        if self.active == 0:
            self.idle.set()

    async def _run(self, rj: RunningJob) -> None:
        try:
            await self._execute(rj)
        finally:
            if not rj.buffered:  # else ``_completed`` frees the slot once it is written
                self._free_slot()

    async def _execute(self, rj: RunningJob) -> None:
        reg = rj.registration
        if reg is None:
            known = list(self.registry.kinds())
            message = str(UnknownKind(rj.job.kind, known))
            await self._fail(rj, None, None, type="conveyor.UnknownKind", message=message)
            return
        timeout = rj.job.timeout or reg.options.timeout or self.config.default_timeout
        # One timer handle per job (not an ``asyncio.timeout`` scope: a third of the cost).
        timer = self._loop.call_later(timeout.total_seconds(), self._expire, rj)
        try:
            result = await reg.handler(rj.ctx)
        except asyncio.CancelledError as exc:
            if not self._end_timer(rj, timer) or rj.stop_reason is not None:
                if rj.stop_reason is None:
                    raise  # the worker itself is being torn down
                await self._stopped(rj)
                return
            if rj.task is not None and rj.task.cancelling():
                raise  # torn down while timing out: the teardown wins
            await self._timed_out(rj, reg, timeout, exc)
        except Exception as exc:
            expired = self._end_timer(rj, timer)
            if rj.stop_reason is not None:
                await self._stopped(rj)
            elif expired:
                await self._timed_out(rj, reg, timeout, exc)
            else:
                await self._failed(rj, reg, exc)
        else:
            self._end_timer(rj, timer)
            if rj.stop_reason is StopReason.LEASE_LOST:
                await self._stopped(rj)
                return
            rj.deciding = True
            rj.buffered = True
            self._completing[rj.lease.token] = rj
            self.completer.add(Completion(rj.lease, result))
            self.slots_changed.set()

    @staticmethod
    def _expire(rj: RunningJob) -> None:
        """The job's timeout elapsed: cancel its handler (unless its outcome is decided)."""
        if rj.deciding or rj.task is None or rj.task.done():
            return
        rj.expired = True
        rj.ctx.cancelled.set()
        rj.task.cancel()

    @staticmethod
    def _end_timer(rj: RunningJob, timer: asyncio.TimerHandle) -> bool:
        """Cancel the timeout; True when it fired (its cancellation is then withdrawn, so
        only a cancellation from elsewhere is left pending on the task)."""
        timer.cancel()
        if rj.expired and rj.task is not None:
            rj.task.uncancel()
        return rj.expired

    async def _stopped(self, rj: RunningJob) -> None:
        rj.deciding = True
        if rj.stop_reason is StopReason.LEASE_LOST:
            self._forget(rj)
            self.events.emit(LeaseLostEvent(*rj.key))
        elif rj.stop_reason is StopReason.SHUTDOWN:
            self.shutdown.append(rj)
        else:
            await self._fail(rj, None, None, type="conveyor.Cancelled", message="cancelled")

    async def _timed_out(
        self, rj: RunningJob, reg: Registration, timeout: timedelta, cause: BaseException
    ) -> None:
        self.events.emit(JobTimedOut(*rj.key, timeout=timeout))
        message = f"timed out after {timeout.total_seconds():g}s"
        exc = TimeoutError(message)
        exc.__cause__ = cause  # the traceback shows where the handler was stopped
        retry = self._retry_delay(rj, reg, TimeoutError(message))
        await self._fail(rj, retry, exc, type="conveyor.Timeout", message=message)

    async def _failed(self, rj: RunningJob, reg: Registration, exc: Exception) -> None:
        if isinstance(exc, Discard):
            await self._fail(rj, None, exc, type="conveyor.Discard", message=exc.reason)
        elif isinstance(exc, Retry):
            after = exc.after or reg.options.retry_policy.delay(rj.lease.attempt)
            if not exc.charge:
                await self._write_fail(rj, FailRequest(rj.lease, None, after, False), after, None)
            else:
                retry = after if rj.lease.attempt < rj.job.max_attempts else None
                message = exc.reason or "retry requested"
                await self._fail(rj, retry, exc, type="conveyor.Retry", message=message)
        else:
            await self._fail(rj, self._retry_delay(rj, reg, exc), exc)

    @staticmethod
    def _retry_delay(rj: RunningJob, reg: Registration, exc: BaseException) -> timedelta | None:
        if rj.lease.attempt >= rj.job.max_attempts or not reg.options.should_retry(exc):
            return None
        return reg.options.retry_policy.delay(rj.lease.attempt)

    async def _fail(
        self, rj: RunningJob, retry_after: timedelta | None, exc: BaseException | None, **kw: str
    ) -> None:
        rj.deciding = True
        now = await self._now()
        error = attempt_error(rj.lease, now, exc, **kw)
        await self._write_fail(rj, FailRequest(rj.lease, error, retry_after), retry_after, error)

    async def _now(self) -> datetime:
        backoff = Backoff()
        while True:
            try:
                return await self.backend.now()
            except BackendUnavailable as exc:
                await backoff.wait("now", exc)

    async def _write_fail(
        self,
        rj: RunningJob,
        request: FailRequest,
        retry_after: timedelta | None,
        error: AttemptError | None,
    ) -> None:
        rj.deciding = True
        backoff = Backoff()
        while True:
            try:
                job = await asyncio.shield(self.backend.fail(request))
                break
            except LeaseLost:
                self._forget(rj)
                self.events.emit(LeaseLostEvent(*rj.key))
                return
            except BackendUnavailable as exc:
                await backoff.wait("fail", exc)
        self._forget(rj)
        if job.status is JobStatus.CANCELLED:
            self.events.emit(JobCancelled(*rj.key))
            return
        self.events.emit(
            JobFailed(
                *rj.key,
                duration=rj.elapsed(),
                error_type=error.type if error else "conveyor.Retry",
                message=error.message if error else "snoozed",
                retry_in=retry_after,
                final=job.status is JobStatus.FAILED,
            )
        )

    def _completed(self, batch: Sequence[Completion], lost: frozenset[JobId]) -> None:
        for completion in batch:
            rj = self._completing.pop(completion.lease.token)
            self._forget(rj)
            self._free_slot()
            event: JobEvent
            if completion.lease.job_id in lost:
                event = LeaseLostEvent(*rj.key)
            else:
                event = JobCompleted(*rj.key, duration=rj.elapsed())
            self.events.emit(event)

    def forget(self, rj: RunningJob) -> None:
        """Drop a job whose lease this worker no longer holds (released, lost, written)."""
        self._forget(rj)

    def running_leases(self) -> list[Lease]:
        return [rj.lease for rj in self.held.values()]

    def abandon_writes(self) -> None:
        """Stopping at once: cancel the jobs still writing their outcome (a failure waiting
        for the backend to come back). Their leases expire and they are rescued."""
        for rj in list(self.held.values()):
            if rj.deciding and not rj.buffered and rj.task is not None and not rj.task.done():
                rj.task.cancel()

    def stop_running(self, reason: StopReason) -> list[asyncio.Task[None]]:
        """Stop every job still in its handler; returns their tasks to await."""
        tasks = []
        for rj in list(self.held.values()):
            if not rj.deciding and rj.task is not None:
                rj.stop(reason)
                tasks.append(rj.task)
        return tasks
