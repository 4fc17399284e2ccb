"""``conveyor worker --processes N``: one supervisor process runs N worker processes (each
``python -m conveyor.worker ... --processes 1``: the worker command without the rest of the
CLI, so a worker process loads no client or web code), restarts a child that crashes (with
backoff), forwards stop requests as SIGTERM (a second request: SIGTERM again, which the
child treats as "stop at once"), and returns 0 when every child exited cleanly.

Children are started in their own session so a terminal's Ctrl-C reaches only the
supervisor, which forwards it once; each child watches ``CONVEYOR_SUPERVISOR_PID`` and stops
by itself if the supervisor disappears. Signal handlers are installed by the CLI, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta

log = logging.getLogger("conveyor.supervisor")
SLOT_ENV = "CONVEYOR_WORKER_SLOT"
SUPERVISOR_ENV = "CONVEYOR_SUPERVISOR_PID"
STABLE_AFTER = timedelta(seconds=60)  # a child that ran this long resets the backoff


class Supervisor:
    def __init__(
        self,
        child_args: Sequence[str],
        processes: int,
        env: Mapping[str, str] | None = None,
        restart_backoff: timedelta = timedelta(seconds=1),
        max_backoff: timedelta = timedelta(seconds=30),
    ) -> None:
        # ``python -m conveyor.worker``: the worker command without the rest of the CLI.
        self._argv = [sys.executable, "-m", "conveyor.worker", *child_args]
        self._processes = processes
        self._env = {**(env if env is not None else os.environ), SUPERVISOR_ENV: str(os.getpid())}
        self._backoff = restart_backoff
        self._max_backoff = max_backoff
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self.restarts = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._children.values() if p.returncode is None]

    def request_stop(self) -> None:
        """Forward a stop to every child (SIGTERM); call again to make it immediate."""
        self._stopping.set()
        for process in self._children.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    async def run(self) -> int:
        """Run until stopped; 0 when every child exited with 0 after the stop."""
        codes = await asyncio.gather(*(self._slot(i) for i in range(self._processes)))
        return 0 if all(code == 0 for code in codes) else 1

    async def _slot(self, index: int) -> int:
        delay = self._backoff.total_seconds()
        while True:
            started = time.monotonic()
            env = {**self._env, SLOT_ENV: str(index)}  # e.g. for a metrics port per child
            process = await asyncio.create_subprocess_exec(
                *self._argv, env=env, start_new_session=True
            )
            self._children[index] = process
            log.info("worker process %d started (pid %d)", index, process.pid)
            if self._stopping.is_set():  # stop raced the start: pass it on
                process.send_signal(signal.SIGTERM)
            code = await process.wait()
            if self._stopping.is_set():
                # Killed by our SIGTERM before it installed its handlers (still starting,
                # so it held no jobs): that is a clean stop too.
                return 0 if code == -signal.SIGTERM else code
            if time.monotonic() - started > STABLE_AFTER.total_seconds():
                delay = self._backoff.total_seconds()
            log.error("worker process %d exited with %d; restarting in %gs", index, code, delay)
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return 0
            delay = min(delay * 2, self._max_backoff.total_seconds())
