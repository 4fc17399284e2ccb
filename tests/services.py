"""Throwaway PostgreSQL and Redis servers for the test suite, on 127.0.0.1 only.

Used by ``tests/conftest.py`` (one session-wide server of each) and by the e2e fault tests
(their own servers, which they restart mid-run). A server whose binaries are missing gives
``ServiceMissing``; the fixtures turn that into a skip, or a failure under
``CONVEYOR_REQUIRE_SERVICES=1``. ``make test`` installs the binaries on Debian as root.

Environment overrides: ``CONVEYOR_TEST_POSTGRES_URL`` / ``CONVEYOR_TEST_REDIS_URL`` point the
suite at servers someone else runs (then nothing is started).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class ServiceMissing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ------------------------------------------------------------------------------ PostgreSQL


def _pg_bindir() -> Path:
    candidates: list[str] = []
    if shutil.which("pg_config"):
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for d in candidates:
        if (Path(d) / "initdb").exists() and (Path(d) / "postgres").exists():
            return Path(d)
    raise ServiceMissing(
        "PostgreSQL server binaries (initdb, postgres) not found; "
        "`make test` installs them on Debian (apt-get install postgresql)"
    )


@dataclass
class PostgresServer:
    """A private cluster in a temporary directory. As root it runs as the ``postgres`` user
    (initdb refuses root)."""

    port: int = field(default_factory=free_port)
    fsync: bool = False
    bindir: Path = field(default_factory=_pg_bindir)
    datadir: Path = field(init=False)
    _tmp: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self._tmp = tempfile.mkdtemp(prefix="conveyor-pg-")
        self.datadir = Path(self._tmp) / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServiceMissing("running as root but there is no 'postgres' user") from exc
            self._user = "postgres"
            os.chown(self._tmp, pw.pw_uid, pw.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int:
        """The postmaster's PID (its backends and background processes are its children)."""
        return int((self.datadir / "postmaster.pid").read_text().split()[0])

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, cwd=self._tmp)

    def init(self) -> PostgresServer:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self._tmp}'\n"
                f"fsync = {'on' if self.fsync else 'off'}\n"
                f"synchronous_commit = {'on' if self.fsync else 'off'}\n"
                "full_page_writes = off\nmax_connections = 300\nshared_buffers = 128MB\n"
            )
        return self

    def start(self) -> PostgresServer:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(Path(self._tmp) / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        _wait_port(self.port)
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-m",
            mode,
            "-w",
            "stop",
            check=False,
        )

    def restart(self, mode: str = "immediate") -> None:
        """Stop (``immediate`` is a crash: no checkpoint) and start again on the same port."""
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self._tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ Redis


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    appendfsync: str = "always"
    _tmp: str = field(init=False, default="")
    _proc: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.binary = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if not self.binary:
            raise ServiceMissing(
                "redis-server not found; `make test` installs it on Debian "
                "(apt-get install redis-server)"
            )
        self._tmp = tempfile.mkdtemp(prefix="conveyor-redis-")

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the Redis server is not running")
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        assert self.binary
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self._tmp,
            "--save",
            "",
            "--daemonize",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--protected-mode",
            "yes",
        ]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)
        return self

    def kill(self) -> None:
        """SIGKILL: a crash. With appendfsync always, nothing acknowledged is lost."""
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)
