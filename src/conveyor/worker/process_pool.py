"""A killable process pool for ``cpu_bound`` tasks.

``concurrent.futures.ProcessPoolExecutor`` cannot stop one running call, so a timed-out or
cancelled job would keep burning a CPU. Here each child runs one job at a time over its own
pipe; cancelling the awaiting coroutine kills that child (and only it), and a fresh one is
spawned on demand. Children are started with ``spawn`` (no inherited locks or loops) and
import the task function by module and qualified name.

Who calls it: the worker's offload (``conveyor.worker.executor.WorkerOffload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import pickle
import signal
import traceback
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from conveyor.handler import Discard, ProcessTarget, Retry
from conveyor.jobs import JSONObject, JSONValue

Reply = tuple[str, object, object, object, object]


class RemoteTaskError(Exception):
    """An exception raised in a child process that could not be rebuilt in the parent."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback


class ChildDied(Exception):
    """The child process exited (killed, crashed) before answering."""


def _resolve(target: ProcessTarget) -> object:
    from conveyor.task import Task

    obj: object = importlib.import_module(target.module)
    for part in target.qualname.split("."):
        obj = getattr(obj, part)
    return obj.fn if isinstance(obj, Task) else obj


def _run_target(target: ProcessTarget, kwargs: JSONObject) -> Reply:
    from conveyor.task import json_result

    try:
        fn = _resolve(target)
        if not callable(fn):
            raise TypeError(f"{target.module}.{target.qualname} is not callable")
        result = fn(**kwargs)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return ("ok", json_result(result), None, None, None)
    except Retry as exc:
        after = None if exc.after is None else exc.after.total_seconds()
        return ("retry", after, exc.reason, exc.charge, None)
    except Discard as exc:
        return ("discard", exc.reason, None, None, None)
    except Exception as exc:
        try:
            pickled: bytes | None = pickle.dumps(exc)
        except Exception:
            pickled = None
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return ("error", name, str(exc), "".join(traceback.format_exception(exc)), pickled)


def child_main(conn: Connection) -> None:
    """The child's loop: one request at a time until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        module, qualname, kwargs = request
        conn.send(_run_target(ProcessTarget(module, qualname), kwargs))


def _decode(reply: Reply) -> JSONValue:
    tag, a, b, c, d = reply
    if tag == "ok":
        return a  # type: ignore[return-value]
    if tag == "retry":
        after = None if a is None else timedelta(seconds=float(a))  # type: ignore[arg-type]
        raise Retry(after, str(b or ""), charge=bool(c))
    if tag == "discard":
        raise Discard(str(a))
    remote_tb = str(c)
    if isinstance(d, bytes):
        try:
            exc = pickle.loads(d)
        except Exception:
            exc = None
        if isinstance(exc, Exception):
            exc.remote_traceback = remote_tb  # type: ignore[attr-defined]
            raise exc
    raise RemoteTaskError(str(a), str(b), remote_tb)


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class ProcessPool:
    """At most ``size`` children busy at once; idle ones are reused."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._mp = multiprocessing.get_context("spawn")
        self._idle: list[_Child] = []
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    def _spawn(self) -> _Child:
        parent, child = self._mp.Pipe()
        process = self._mp.Process(target=child_main, args=(child,), daemon=True)
        process.start()
        child.close()
        return _Child(process, parent)

    async def run(self, target: ProcessTarget, kwargs: JSONObject) -> JSONValue:
        if self._closed:
            raise RuntimeError("the process pool is closed")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            child = self._idle.pop() if self._idle else await asyncio.to_thread(self._spawn)
            healthy = False
            try:
                child.conn.send((target.module, target.qualname, kwargs))
                reply = await self._receive(child)
                healthy = True
            finally:
                if healthy and not self._closed:
                    self._idle.append(child)
                else:  # cancelled (timeout, cancel, shutdown) or broken: really stop it
                    await asyncio.to_thread(child.kill)
        return _decode(reply)

    @staticmethod
    async def _receive(child: _Child) -> Reply:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = child.conn.fileno()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        try:
            reply: Reply = child.conn.recv()
        except (EOFError, OSError) as exc:
            code = child.process.exitcode
            raise ChildDied(f"the task's process exited (code {code}) before answering") from exc
        return reply

    def close(self) -> None:
        """Stop every idle child (busy ones are killed when their awaits are cancelled)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for child in idle:
            with contextlib.suppress(OSError):
                child.conn.send(None)
            child.process.join(timeout=2)
            child.kill()
