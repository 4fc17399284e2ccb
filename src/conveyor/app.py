"""The Python app: ``Conveyor`` owns a task registry and backend handles, and is the one
enqueue path for Python code (tasks call it; built-in kinds may too).

The core is async. Each event loop that uses the async API gets its own backend handle,
opened lazily on that loop (``await app.backend()``); the sync API is a thin wrapper that
runs the same coroutines on a private event-loop thread owned by the app (the "portal")
through ``asyncio.run_coroutine_threadsafe``. ``memory://`` is one store per app, so all
loops share one memory engine. Close with ``app.close()`` or ``await app.aclose()``.

Who calls it: user code (``@app.task``, ``enqueue``, ``get_job``), the worker (registry,
``backend()``), the CLI (``--app module:attr``), ``conveyor.testing``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, ParamSpec, TypeVar, overload

from conveyor.backend import Backend
from conveyor.backends import open_backend, scheme_of
from conveyor.clock import Clock
from conveyor.errors import ConfigurationError, InvalidPayload, PayloadTooLarge
from conveyor.handler import Handler, HandlerOptions, LazyHandler, Registry
from conveyor.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    Job,
    JobId,
    NewJob,
)
from conveyor.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from conveyor.settings import Settings, resolve_database_url
from conveyor.task import Task

if TYPE_CHECKING:
    from conveyor.handlers.webhook.client import WebhookClient

# The built-in ``webhook`` kind, registered by every app without importing the HTTP stack
# (httpx, pydantic models, metrics): ``_load_webhooks`` checks these against
# ``conveyor.handlers.webhook.delivery.webhook_options()`` when it loads the handler.
WEBHOOK_KIND = "webhook"
WEBHOOK_OPTIONS = HandlerOptions(
    queue="webhooks",
    max_attempts=17,
    retry_policy=RetryPolicy(
        base=timedelta(seconds=10), factor=2.0, cap=timedelta(hours=4), jitter=0.2
    ),
    timeout=timedelta(minutes=2),
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
# The payload size check's encoder, built once (``json.dumps`` with options builds one per call).
_PAYLOAD_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


class _Portal:
    """A daemon thread running an event loop, for the sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="conveyor-portal", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[object, object, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("the sync Conveyor API cannot be called from its own portal loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def _retry_policy(value: RetryPolicy | timedelta | None) -> RetryPolicy:
    if value is None:
        return DEFAULT_RETRY_POLICY
    if isinstance(value, timedelta):
        return RetryPolicy(base=value, cap=max(value, DEFAULT_RETRY_POLICY.cap))
    return value


class Conveyor:
    """A Conveyor app: ``app = Conveyor("sqlite:///conveyor.db")``.

    With no URL, the URL is ``CONVEYOR_DATABASE_URL`` or ``sqlite:///conveyor.db``. The CLI's
    ``--database-url`` flag (then the environment) overrides the app's URL for a worker.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        clock: Clock | None = None,
        max_payload_bytes: int | None = None,
        migrate: bool = True,
    ) -> None:
        self.configured_url = database_url
        self.database_url = resolve_database_url(None, database_url)
        if database_url:
            self.database_url = database_url
        scheme_of(self.database_url)  # unknown schemes fail here, at construction
        self.registry = Registry()
        self.clock = clock
        self.migrate = migrate
        self.max_payload_bytes = max_payload_bytes or Settings().max_payload_bytes
        self._lock = threading.Lock()
        self._handles: dict[asyncio.AbstractEventLoop, Backend] = {}
        self._opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._shared: Backend | None = None  # memory://: one store for every loop
        self._shared_users = 0
        self._portal: _Portal | None = None
        self._webhooks: WebhookClient | None = None
        # Built-in kinds: every app's workers can deliver webhooks (queue "webhooks"); the
        # webhook modules are imported by the first delivery (a worker's memory matters).
        self.registry.register(WEBHOOK_KIND, LazyHandler(self._load_webhooks), WEBHOOK_OPTIONS)

    @property
    def webhooks(self) -> WebhookClient:
        """``app.webhooks.send(endpoint=..., body=...)`` enqueues a signed delivery."""
        if self._webhooks is None:
            from conveyor.handlers.webhook.client import WebhookClient

            self._webhooks = WebhookClient(self)
        return self._webhooks

    def _load_webhooks(self) -> Handler:
        from conveyor.handlers.webhook.client import webhook_handler
        from conveyor.handlers.webhook.delivery import webhook_options

        if webhook_options() != WEBHOOK_OPTIONS:  # the two definitions drifted apart
            raise ConfigurationError("conveyor.app.WEBHOOK_OPTIONS != webhook_options()")
        return webhook_handler(self)

    def __repr__(self) -> str:
        return f"<Conveyor {self.database_url!r} tasks={len(self.registry)}>"

    # ------------------------------------------------------------------ tasks

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: timedelta | None = None,
        priority: int = DEFAULT_PRIORITY,
        retry_backoff: RetryPolicy | timedelta | None = None,
        retry_on: Sequence[type[BaseException]] = (),
        no_retry_on: Sequence[type[BaseException]] = (),
        cpu_bound: bool = False,
        cron: str | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[..., object] | None = None,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: timedelta | None = None,
        priority: int = DEFAULT_PRIORITY,
        retry_backoff: RetryPolicy | timedelta | None = None,
        retry_on: Sequence[type[BaseException]] = (),
        no_retry_on: Sequence[type[BaseException]] = (),
        cpu_bound: bool = False,
        cron: str | None = None,
    ) -> object:
        """Register a function as a task (``@app.task`` or ``@app.task(...)``).

        The kind is ``f"{module}.{qualname}"`` unless ``name`` is given. ``retry_backoff``:
        a ``RetryPolicy``, or a ``timedelta`` base for the default exponential policy.
        ``retry_on``/``no_retry_on``: exception types retried / failed at once. ``cpu_bound``:
        run in the worker's process pool (the function must be importable by module and
        name). ``cron``: enqueued by workers at each tick (the function takes no arguments
        without defaults).
        """
        if max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if cron is not None:
            from conveyor.cron import validate_cron

            validate_cron(cron)
        options = HandlerOptions(
            queue=queue,
            max_attempts=max_attempts,
            timeout=timeout,
            priority=priority,
            retry_policy=_retry_policy(retry_backoff),
            retry_on=tuple(retry_on),
            no_retry_on=tuple(no_retry_on),
            cron=cron,
        )

        def decorate(func: Callable[P, R]) -> Task[P, R]:
            kind = name or f"{func.__module__}.{func.__qualname__}"
            task = Task(self, func, kind, options, cpu_bound=cpu_bound)
            if cron is not None:
                try:
                    task.handler.signature.bind()
                except TypeError:
                    raise ConfigurationError(
                        f"cron task {kind} must be callable without arguments"
                    ) from None
            self.registry.register(kind, task.handler, options)
            return task

        return decorate if fn is None else decorate(fn)

    # ------------------------------------------------------------------ handles

    async def backend(self) -> Backend:
        """The open backend handle for the running event loop (opened on first use)."""
        loop = asyncio.get_running_loop()
        handle = self._handles.get(loop)
        if handle is not None:
            return handle
        with self._lock:
            opening = self._opening.setdefault(loop, asyncio.Lock())
        async with opening:
            handle = self._handles.get(loop)
            if handle is None:
                handle = await self._open_handle()
                self._handles[loop] = handle
        return handle

    async def _open_handle(self) -> Backend:
        if scheme_of(self.database_url) != "memory":
            handle = open_backend(self.database_url, clock=self.clock, migrate=self.migrate)
            await handle.open()
            return handle
        with self._lock:
            if self._shared is None:
                self._shared = open_backend(self.database_url, clock=self.clock)
                first = True
            else:
                first = False
            self._shared_users += 1
            shared = self._shared
        if first:
            await shared.open()
        return shared

    async def _close_handle(self, handle: Backend) -> None:
        if handle is self._shared:
            with self._lock:
                self._shared_users -= 1
                last = self._shared_users == 0
                if last:
                    self._shared = None
            if not last:
                return
        await handle.close()

    async def aclose(self) -> None:
        """Close this loop's handle and the portal (and with them the sync API's handle)."""
        loop = asyncio.get_running_loop()
        handle = self._handles.pop(loop, None)
        self._opening.pop(loop, None)
        if handle is not None:
            await self._close_handle(handle)
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Close the sync API's handle and stop the portal thread. Idempotent."""
        with self._lock:
            portal, self._portal = self._portal, None
        if portal is None:
            return
        handle = self._handles.pop(portal.loop, None)
        self._opening.pop(portal.loop, None)
        if handle is not None:
            portal.call(self._close_handle(handle))
        portal.stop()

    def use_database_url(self, url: str) -> None:
        """Point the app at another store (tests). Only while no handle is open."""
        scheme_of(url)
        if self._handles or self._shared is not None:
            raise ConfigurationError("close the app before changing its database URL")
        self.database_url = url

    def _sync(self, coro: Coroutine[object, object, T]) -> T:
        with self._lock:
            if self._portal is None:
                self._portal = _Portal()
            portal = self._portal
        return portal.call(coro)

    # ------------------------------------------------------------------ jobs

    def check_payload(self, job: NewJob) -> None:
        """JSON object within the size limit, else ``InvalidPayload``/``PayloadTooLarge``."""
        if not isinstance(job.payload, dict):
            raise InvalidPayload(f"payload for {job.kind} must be a JSON object")
        try:
            size = len(_PAYLOAD_ENCODER.encode(job.payload))
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(f"payload for {job.kind} is not JSON: {exc}") from None
        if size > self.max_payload_bytes:
            raise PayloadTooLarge(size, self.max_payload_bytes)

    def check_payloads(self, jobs: Sequence[NewJob]) -> None:
        """``check_payload`` for each job, the common case in one encoder call: when the
        payloads encode as one JSON array no longer than the limit, each of them (a part of
        that text) is valid and within the limit; otherwise each is checked on its own."""
        if len(jobs) > 1 and all(isinstance(job.payload, dict) for job in jobs):
            try:
                size = len(_PAYLOAD_ENCODER.encode([job.payload for job in jobs]))
            except (TypeError, ValueError):
                size = None
            if size is not None and size <= self.max_payload_bytes:
                return
        for job in jobs:
            self.check_payload(job)

    async def enqueue_many_async(self, jobs: Sequence[NewJob]) -> list[Job]:
        """Store jobs in one backend call (all or none); returns the stored jobs (the
        existing one where an idempotency key matched)."""
        self.check_payloads(jobs)
        if not jobs:
            return []
        backend = await self.backend()
        return [e.job for e in await backend.enqueue(jobs)]

    def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Job]:
        self.check_payloads(jobs)  # refuse bad input before touching the portal
        return self._sync(self.enqueue_many_async(jobs))

    async def enqueue_async(self, job: NewJob) -> Job:
        [stored] = await self.enqueue_many_async([job])
        return stored

    def enqueue(self, job: NewJob) -> Job:
        [stored] = self.enqueue_many([job])
        return stored

    async def get_job_async(self, job_id: str) -> Job:
        from conveyor.errors import JobNotFound

        job = await (await self.backend()).get(JobId(job_id))
        if job is None:
            raise JobNotFound(job_id)
        return job

    def get_job(self, job_id: str) -> Job:
        """The stored job; raises ``JobNotFound``."""
        return self._sync(self.get_job_async(job_id))

    async def cancel_async(self, job_id: str) -> Job:
        return await (await self.backend()).cancel(JobId(job_id))

    def cancel(self, job_id: str) -> Job:
        """Cancel a waiting job at once, or ask its worker to stop a running one."""
        return self._sync(self.cancel_async(job_id))
