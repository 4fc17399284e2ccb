"""Python tasks: a function registered with ``@app.task`` becomes a ``Task``, which enqueues
jobs of its kind (payload = the function's keyword arguments) and, through ``TaskHandler``,
is the ``Handler`` the worker runs for that kind.

Who calls it: ``conveyor.app.Conveyor.task`` builds tasks; user code enqueues; the worker
calls ``TaskHandler`` via the registry; ``conveyor.worker.process_pool`` imports task
functions in child processes by module and qualified name.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Generic, ParamSpec, Protocol, TypeVar

from conveyor.errors import ConfigurationError, InvalidPayload
from conveyor.handler import Discard, HandlerOptions, JobContext, ProcessTarget
from conveyor.jobs import Job, JSONValue, NewJob

P = ParamSpec("P")
R = TypeVar("R")


class TaskApp(Protocol):
    """What a task needs from its app: the one enqueue path, sync and async."""

    def enqueue_many(self, jobs: Sequence[NewJob]) -> list[Job]: ...

    async def enqueue_many_async(self, jobs: Sequence[NewJob]) -> list[Job]: ...


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Per-enqueue overrides of the task's defaults (None: keep the task's)."""

    queue: str | None = None
    priority: int | None = None
    delay: timedelta | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = None
    max_attempts: int | None = None
    timeout: timedelta | None = None
    trace: str | None = None


def context_parameter(fn: Callable[..., object]) -> str | None:
    """The name of the parameter annotated ``JobContext`` (injected, not part of the payload).
    String annotations are evaluated when they can be, else matched by name."""
    try:
        params = inspect.signature(fn, eval_str=True).parameters
    except Exception:  # names only resolvable in a local scope: fall back to the strings
        params = inspect.signature(fn).parameters
    for param in params.values():
        ann = param.annotation
        if ann is JobContext or (isinstance(ann, str) and ann.split(".")[-1] == "JobContext"):
            return param.name
    return None


def payload_signature(fn: Callable[..., object], ctx_param: str | None) -> inspect.Signature:
    """The signature payloads must bind to: keyword-passable parameters, context excluded."""
    sig = inspect.signature(fn)
    params = []
    for param in sig.parameters.values():
        if param.name == ctx_param:
            continue
        if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL):
            raise ConfigurationError(
                f"task {fn.__qualname__}: parameter {param.name!r} cannot be passed by keyword; "
                "a payload is a JSON object of keyword arguments"
            )
        params.append(param)
    return sig.replace(parameters=params)


def check_binds(kind: str, sig: inspect.Signature, payload: Mapping[str, object]) -> None:
    try:
        sig.bind(**payload)
    except TypeError as exc:
        raise InvalidPayload(f"payload for {kind} does not match {sig}: {exc}") from None


class PayloadCheck:
    """``signature.bind(**payload)`` without building a ``BoundArguments`` per job: the
    payload's keys must include every required parameter and, unless the function takes
    ``**kwargs``, name only its parameters. Same verdict as ``bind`` (every parameter is
    keyword-passable, ``payload_signature`` sees to that), a fraction of the cost."""

    def __init__(self, signature: inspect.Signature) -> None:
        params = signature.parameters.values()
        self.names = frozenset(p.name for p in params if p.kind is not p.VAR_KEYWORD)
        self.required = frozenset(
            p.name for p in params if p.default is p.empty and p.kind is not p.VAR_KEYWORD
        )
        self.open = any(p.kind is p.VAR_KEYWORD for p in params)

    def accepts(self, payload: Mapping[str, object]) -> bool:
        keys = payload.keys()
        return self.required <= keys and (self.open or keys <= self.names)


def json_result(value: object) -> JSONValue:
    """A handler's return value as stored: it must be JSON (checked, not coerced)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return json.loads(json.dumps(value, allow_nan=False))  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"task result is not JSON-serialisable: {exc}") from exc


class TaskHandler:
    """The ``Handler`` for a Python task: async functions run on the loop, sync ones in the
    worker's thread pool, ``cpu_bound`` ones in its process pool."""

    def __init__(self, fn: Callable[..., object], kind: str, *, cpu_bound: bool) -> None:
        self.fn = fn
        self.kind = kind
        self.cpu_bound = cpu_bound
        self.ctx_param = context_parameter(fn)
        self.signature = payload_signature(fn, self.ctx_param)
        self.check = PayloadCheck(self.signature)
        self.is_async = inspect.iscoroutinefunction(fn)
        if cpu_bound and self.ctx_param:
            raise ConfigurationError(f"task {kind}: a cpu_bound task cannot take a JobContext")

    async def __call__(self, ctx: JobContext) -> JSONValue:
        payload = ctx.job.payload
        try:
            if not self.check.accepts(payload):
                self.signature.bind(**payload)  # raises, with the message
        except TypeError as exc:  # enqueued over HTTP with the wrong arguments: never fixable
            raise Discard(f"payload does not match {self.kind}{self.signature}: {exc}") from None
        if self.cpu_bound:
            target = ProcessTarget(self.fn.__module__, self.fn.__qualname__)
            return await ctx.offload.in_process(target, payload)
        kwargs: dict[str, object] = dict(payload)
        if self.ctx_param:
            kwargs[self.ctx_param] = ctx
        if self.is_async:
            result = await self.fn(**kwargs)  # type: ignore[misc]
        else:
            result = await ctx.offload.in_thread(functools.partial(self.fn, **kwargs))
        return json_result(result)


class TaskCall(Generic[P, R]):
    """A task with enqueue options bound: ``task.options(delay=...).enqueue(...)``."""

    def __init__(self, task: Task[P, R], options: EnqueueOptions) -> None:
        self._task = task
        self._options = options

    def _check(self, payload: Mapping[str, JSONValue]) -> None:
        """Refuse a payload that is not an object or does not bind to the task's function."""
        task = self._task
        if not isinstance(payload, Mapping):
            raise InvalidPayload(f"payload for {task.name} must be a JSON object")
        if not task.handler.check.accepts(payload):
            check_binds(task.name, task.handler.signature, payload)

    def new_job(self, payload: Mapping[str, JSONValue]) -> NewJob:
        self._check(payload)
        task = self._task
        o, d = self._options, task.defaults
        try:
            return self._build(task, payload, o, d)
        except ValueError as exc:
            raise ConfigurationError(f"enqueue options for {task.name}: {exc}") from None

    @staticmethod
    def _build(
        task: Task[P, R], payload: Mapping[str, JSONValue], o: EnqueueOptions, d: HandlerOptions
    ) -> NewJob:
        return NewJob(
            kind=task.name,
            payload=dict(payload),
            queue=o.queue or d.queue,
            priority=d.priority if o.priority is None else o.priority,
            run_at=o.run_at,
            delay=o.delay,
            max_attempts=o.max_attempts or d.max_attempts,
            timeout=o.timeout or d.timeout,
            idempotency_key=o.idempotency_key,
            trace=o.trace,
        )

    def _many(self, payloads: Iterable[Mapping[str, JSONValue]]) -> list[NewJob]:
        """``new_job`` for each payload; the options are resolved and validated once (by
        the first job), then each job differs only in its payload."""
        if self._options.idempotency_key is not None:
            raise ConfigurationError("idempotency_key applies to one enqueue, not enqueue_many")
        jobs: list[NewJob] = []
        options: dict[str, object] = {}
        for payload in payloads:
            if not jobs:
                jobs.append(self.new_job(payload))
                options = {f: getattr(jobs[0], f) for f in _NEW_JOB_OPTIONS}
                continue
            self._check(payload)
            jobs.append(NewJob(payload=dict(payload), **options))  # type: ignore[arg-type]
        return jobs

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        [job] = self._task.app.enqueue_many([self.new_job(_kwargs_only(args, kwargs))])
        return job

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        new = self.new_job(_kwargs_only(args, kwargs))
        [job] = await self._task.app.enqueue_many_async([new])
        return job

    def enqueue_many(self, payloads: Iterable[Mapping[str, JSONValue]]) -> list[Job]:
        return self._task.app.enqueue_many(self._many(payloads))

    async def enqueue_many_async(self, payloads: Iterable[Mapping[str, JSONValue]]) -> list[Job]:
        return await self._task.app.enqueue_many_async(self._many(payloads))


_NEW_JOB_OPTIONS = tuple(f.name for f in fields(NewJob) if f.name != "payload")


def _kwargs_only(args: tuple[object, ...], kwargs: Mapping[str, object]) -> dict[str, JSONValue]:
    if args:
        raise InvalidPayload("enqueue takes keyword arguments only (a payload is a JSON object)")
    return dict(kwargs)  # type: ignore[arg-type]


class Task(Generic[P, R]):
    """A registered Python function. Calling it calls the function directly (no job);
    ``enqueue`` stores a job for a worker to run.

    Enqueue options: ``task.options(delay=..., run_at=..., priority=..., idempotency_key=...,
    queue=..., max_attempts=..., timeout=...)`` returns a ``TaskCall`` with the same
    ``enqueue`` / ``enqueue_async`` / ``enqueue_many`` / ``enqueue_many_async`` methods.
    ``enqueue_many`` validates every payload first and stores them in one backend call.
    Payloads are keyword arguments only; they must bind to the function's signature and be
    JSON (else ``InvalidPayload``, nothing stored).
    """

    def __init__(
        self,
        app: TaskApp,
        fn: Callable[P, R],
        name: str,
        defaults: HandlerOptions,
        *,
        cpu_bound: bool = False,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.defaults = defaults
        self.handler = TaskHandler(fn, name, cpu_bound=cpu_bound)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.defaults.queue!r}>"

    def options(
        self,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: timedelta | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        timeout: timedelta | None = None,
        trace: str | None = None,
    ) -> TaskCall[P, R]:
        options = EnqueueOptions(
            queue, priority, delay, run_at, idempotency_key, max_attempts, timeout, trace
        )
        return TaskCall(self, options)

    def _call(self) -> TaskCall[P, R]:
        return TaskCall(self, EnqueueOptions())

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return self._call().enqueue(*args, **kwargs)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return await self._call().enqueue_async(*args, **kwargs)

    def enqueue_many(self, payloads: Iterable[Mapping[str, JSONValue]]) -> list[Job]:
        return self._call().enqueue_many(payloads)

    async def enqueue_many_async(self, payloads: Iterable[Mapping[str, JSONValue]]) -> list[Job]:
        return await self._call().enqueue_many_async(payloads)
