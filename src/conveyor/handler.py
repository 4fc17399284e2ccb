"""The handler seam: what runs a job, what it may do while running, and how it signals.

* ``Handler``: the protocol every kind implements (Python tasks, webhook, container, deploy);
* ``JobContext``: the running job, lease-fenced progress, its log, cancellation;
* ``Registry``: kind -> handler + ``HandlerOptions``, owned by the app, read by the worker;
* ``LazyHandler``: a handler whose module is imported on its first job (built-in kinds with
  heavy dependencies, so a worker that never runs them never loads them);
* ``Retry`` / ``Discard``: signals a handler raises to steer the attempt.

The signals deliberately do not derive from ``ConveyorError``: an ``except ConveyorError``
around infrastructure code can never swallow a handler's instruction. Called by the worker's
executor (``conveyor.worker``) and by ``conveyor.task``; knows nothing of any engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar, runtime_checkable

from conveyor.backend import Lease
from conveyor.errors import ConfigurationError
from conveyor.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    Job,
    JobId,
    JSONObject,
    JSONValue,
)
from conveyor.retry import DEFAULT_RETRY_POLICY, RetryPolicy

T = TypeVar("T")


class Retry(Exception):
    """Schedule the next attempt after ``after`` (default: the task's backoff).

    ``charge=True`` (default): the attempt counts against ``max_attempts``, so a handler that
    always says Retry still ends in the dead-letter queue. ``charge=False``: the attempt does
    not count (a snooze: "not yet, try later"), and no error is recorded.
    """

    def __init__(
        self, after: timedelta | None = None, reason: str = "", *, charge: bool = True
    ) -> None:
        super().__init__(reason or "retry requested")
        self.after = after
        self.reason = reason
        self.charge = charge


class Discard(Exception):
    """Give up at once: the job goes to ``failed`` (the dead-letter queue) with ``reason``,
    whatever attempts are left. For errors no retry can fix (bad input, 4xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------- the handler seam


class Offload(Protocol):
    """Where a handler sends blocking or CPU-heavy work. The worker provides it (a bounded
    thread pool and a killable process pool); handlers never own pools themselves."""

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the worker's thread pool. Cancelling the await abandons the thread
        (Python cannot stop a thread): the slot is freed, the thread runs to its end."""
        ...

    async def in_process(self, target: ProcessTarget, kwargs: JSONObject) -> JSONValue:
        """Run ``target`` with ``kwargs`` in a child process; cancelling the await kills it."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessTarget:
    """A function to run in a child process, named so that the child can import it:
    ``getattr(import_module(module), qualname)`` (a ``Task`` found there runs its function)."""

    module: str
    qualname: str


class _InlineOffload:
    """Offload used outside a worker (``JobContext.detached``): threads via asyncio, no
    process pool."""

    async def in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    async def in_process(self, target: ProcessTarget, kwargs: JSONObject) -> JSONValue:
        raise RuntimeError("cpu_bound tasks need a worker's process pool")


class JobContext:
    """What a running handler knows and may do: its job and attempt, lease-fenced progress,
    the job's log, and whether it was asked to stop.

    ``cancelled`` is set when the worker stops the job (cancel requested, lease lost, timeout,
    shutdown); async handlers are also cancelled (``CancelledError``), sync handlers running
    in a thread should poll ``ctx.is_cancelled``. The ``*_sync`` variants are for sync
    handlers, which run in a worker thread: they hop to the worker's loop and wait.
    """

    def __init__(
        self, job: Job, lease: Lease, store: ContextStore, offload: Offload | None = None
    ) -> None:
        self.job = job
        self.lease = lease
        self.cancelled = asyncio.Event()
        self.offload: Offload = offload or _InlineOffload()
        self._store = store
        self._loop = asyncio.get_running_loop()

    @property
    def attempt(self) -> int:
        return self.lease.attempt

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    async def set_progress(self, progress: JSONObject) -> None:
        """Replace the job's progress object. Raises ``LeaseLost`` when the job is no longer
        ours (it was rescued or finished elsewhere): the handler should stop."""
        await self._store.set_progress(self.lease, progress)

    async def log(self, *lines: str) -> None:
        """Append lines to the job's log (streamed by the API)."""
        if lines:
            await self._store.append_log(self.job.id, list(lines))

    def set_progress_sync(self, progress: JSONObject) -> None:
        self._call_sync(self.set_progress(progress))

    def log_sync(self, *lines: str) -> None:
        self._call_sync(self.log(*lines))

    def _call_sync(self, coro: Coroutine[object, object, None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("use the async methods (await ctx.set_progress/log) on the loop")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result()


class ContextStore(Protocol):
    """The part of the backend a ``JobContext`` uses."""

    async def set_progress(self, lease: Lease, progress: JSONObject) -> None: ...

    async def append_log(self, job_id: JobId, lines: Sequence[str]) -> None: ...


@runtime_checkable
class Handler(Protocol):
    """Runs one attempt of a job. Return the JSON result; raise ``Retry``/``Discard`` or any
    exception to fail the attempt. Python tasks, webhooks, containers and deployments all
    plug in through this one protocol."""

    async def __call__(self, ctx: JobContext) -> JSONValue: ...


class LazyHandler:
    """A ``Handler`` built by ``load()`` on its first call, then reused. Registering one
    costs nothing: what it imports is paid for by the first job of its kind only."""

    def __init__(self, load: Callable[[], Handler]) -> None:
        self._load = load
        self._handler: Handler | None = None

    @property
    def loaded(self) -> bool:
        return self._handler is not None

    def resolve(self) -> Handler:
        if self._handler is None:
            self._handler = self._load()
        return self._handler

    async def __call__(self, ctx: JobContext) -> JSONValue:
        return await self.resolve()(ctx)


def _is_lazy(handler: Handler) -> bool:
    return isinstance(handler, LazyHandler)


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    """Defaults for the jobs of one kind, and how the worker treats their failures.

    ``retry_on``: only these exception types are retried (empty: any ``Exception``);
    ``no_retry_on``: these go straight to ``failed`` (checked first). ``timeout`` None: the
    worker's default. ``cron``: a crontab expression; workers enqueue each tick once.
    """

    queue: str = DEFAULT_QUEUE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: timedelta | None = None
    priority: int = DEFAULT_PRIORITY
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    retry_on: tuple[type[BaseException], ...] = ()
    no_retry_on: tuple[type[BaseException], ...] = ()
    cron: str | None = None

    def should_retry(self, exc: BaseException) -> bool:
        if self.no_retry_on and isinstance(exc, self.no_retry_on):
            return False
        if self.retry_on:
            return isinstance(exc, self.retry_on)
        return True


@dataclass(frozen=True, slots=True)
class Registration:
    kind: str
    handler: Handler
    options: HandlerOptions


class Registry:
    """Kind -> handler and options. Owned by a ``Conveyor`` app (its tasks) and read by the
    worker; built-in kinds (webhook, container, deploy) register here the same way."""

    def __init__(self) -> None:
        self._entries: dict[str, Registration] = {}

    def register(self, kind: str, handler: Handler, options: HandlerOptions) -> Registration:
        if not kind:
            raise ConfigurationError("a kind must not be empty")
        existing = self._entries.get(kind)
        # A lazily registered built-in kind may be replaced by an explicit registration.
        if existing and existing.handler is not handler and not _is_lazy(existing.handler):
            raise ConfigurationError(f"kind {kind!r} is already registered")
        entry = Registration(kind, handler, options)
        self._entries[kind] = entry
        return entry

    def get(self, kind: str) -> Registration | None:
        return self._entries.get(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._entries

    def __iter__(self) -> Iterator[Registration]:
        return iter(tuple(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def merged(self, other: Registry) -> Registry:
        """A new registry with both sets of kinds (``other`` wins on a clash)."""
        merged = Registry()
        merged._entries = {**self._entries, **other._entries}
        return merged
