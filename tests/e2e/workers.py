"""Real worker processes for the fault tests: start ``python -m conveyor worker`` as a
subprocess, find its children, signal them by PID, and wait with deadlines.

Every process started here is tracked by ``ProcessGroup`` and killed (SIGKILL, by PID, its
children first) when the group is closed, so a failing test never leaves workers behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.ledger import LEDGER_ENV

ROOT = Path(__file__).resolve().parents[2]
TASKS_APP = "tests.e2e.ledger_tasks:app"
QUEUE = "e2e"


def base_env(
    database_url: str, ledger: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    env["CONVEYOR_DATABASE_URL"] = database_url
    env[LEDGER_ENV] = str(ledger)
    env.setdefault("CONVEYOR_LOG_LEVEL", "warning")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (scanning /proc: no psutil needed)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # comm may hold spaces and parens: the fields after the last ')' are fixed.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def worker_children(pid: int) -> list[int]:
    """Children of a supervisor that are workers (not multiprocessing helpers)."""
    return [
        c
        for c in children_of(pid)
        if "resource_tracker" not in cmdline(c) and "forkserver" not in cmdline(c)
    ]


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path
    args: tuple[str, ...]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.02)
        return self.proc.poll()


@dataclass
class ProcessGroup:
    """Starts and owns worker/producer subprocesses; ``close()`` kills what is left."""

    workdir: Path
    env: dict[str, str]
    started: list[WorkerProcess] = field(default_factory=list)
    extra_pids: set[int] = field(default_factory=set)

    def worker(
        self,
        *,
        concurrency: int = 16,
        processes: int = 1,
        grace: float = 10.0,
        queues: Sequence[str] = (QUEUE,),
        app: str = TASKS_APP,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:
        args = (
            sys.executable, "-m", "conveyor", "worker",
            "--app", app,
            "--queues", ",".join(queues),
            "--concurrency", str(concurrency),
            "--processes", str(processes),
            "--grace", str(grace),
            *extra_args,
        )  # fmt: skip
        return self.spawn(args, env=env, name="worker")

    def spawn(
        self, args: Sequence[str], *, env: Mapping[str, str] | None = None, name: str = "proc"
    ) -> WorkerProcess:
        log = self.workdir / f"{name}-{len(self.started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(args),
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wp = WorkerProcess(proc, log, tuple(args))
        self.started.append(wp)
        return wp

    def track(self, pid: int) -> None:
        self.extra_pids.add(pid)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log.name} (pid {p.pid}, rc {p.proc.poll()}):\n{p.output()}"
            for p in self.started
        )

    def close(self) -> None:
        for wp in self.started:
            self.extra_pids.update(_descendants(wp.pid))
        for pid in sorted(self.extra_pids):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for wp in self.started:
            if wp.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    wp.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                wp.proc.wait(10)


def _descendants(pid: int) -> Iterator[int]:
    for child in children_of(pid):
        yield from _descendants(child)
        yield child


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    what: str,
    interval: float = 0.05,
    on_timeout: Callable[[], str] | None = None,
    watch: Sequence[WorkerProcess] = (),
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` (and ``on_timeout()``) at the deadline,
    or at once if one of the ``watch`` processes exited."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watch:
            if proc.proc.poll() is not None:
                detail = on_timeout() if on_timeout else proc.output()
                raise AssertionError(
                    f"process {proc.pid} exited ({proc.proc.returncode}) while waiting for "
                    f"{what}\n{detail}"
                )
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail}")
        await asyncio.sleep(interval)
