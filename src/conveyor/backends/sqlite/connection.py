"""Connections to one SQLite file, and the threads that use them, so the event loop never
blocks on SQLite.

Called by ``SQLiteBackend``. Layout, and why:

* **One writer** connection on one dedicated thread. Every write transaction runs there,
  opened with ``BEGIN IMMEDIATE``: the write lock is taken up front, so a transaction never
  tries to upgrade a read lock (a deferred transaction that upgrades is how two SQLite
  workers claimed the same job in huey#123, and why "database is locked" appears despite a
  busy timeout). SQLite serialises writers anyway; one thread per process costs nothing.
* **Readers**: a small pool of threads, each with its own connection (WAL lets them read
  while a writer commits). Used by get, list, stats, read_log ...
* **A watcher** thread with its own connection, polling ``PRAGMA data_version`` while
  someone waits for work (``wakeups.Watcher``).

Pragmas: WAL; ``synchronous=NORMAL`` (a commit survives a crash of the process, the OS
keeps it; a power loss may lose the last transactions: see ``SYNCHRONOUS``);
``foreign_keys=ON``; ``busy_timeout`` so SQLite itself waits for the lock, and on top of it
``BUSY_RETRIES`` retries of the whole transaction before ``BackendUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from conveyor.backends.sqlite.wakeups import Watcher
from conveyor.errors import BackendError, BackendUnavailable, ConfigurationError, ConveyorError

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5_000
BUSY_RETRIES = 3
# NORMAL in WAL: no fsync per commit (the WAL is fsynced at checkpoints). FULL fsyncs every
# commit: measured with tests/backends/sqlite/microbench.py, one-job enqueues drop from
# ~10,000/s to ~3,100/s on this machine's disk (more on slower disks), batched claim and
# complete are unchanged when idle and halve under load. See the package docstring.
SYNCHRONOUS = "NORMAL"
READER_THREADS = 2
MIN_SQLITE = (3, 35, 0)  # RETURNING

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def parse_url(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` (SQLAlchemy's forms) -> path.
    The directory must exist; the file is created on first open."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("sqlite", "sqlite3"):
        raise ConfigurationError(f"not an SQLite URL: {url!r}; use sqlite:///file.db")
    if parts.netloc or not url[len(parts.scheme) :].startswith(":///"):
        raise ConfigurationError(
            f"malformed SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"SQLite URL {url!r} takes no query string or fragment")
    raw = parts.path[1:]  # "/relative.db" -> "relative.db"; "//abs.db" -> "/abs.db"
    if not raw or raw.endswith("/"):
        raise ConfigurationError(f"SQLite URL {url!r} names no file")
    if raw == ":memory:":
        raise ConfigurationError(
            "an in-memory SQLite database cannot be shared by the engine's connections; "
            "use memory:// or a file"
        )
    path = Path(raw)
    if not path.parent.is_dir():
        raise ConfigurationError(
            f"the directory of the SQLite database {str(path)!r} does not exist"
        )
    return path.resolve()


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with Conveyor's pragmas."""
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,  # each connection is only used by one thread at a time
        timeout=BUSY_TIMEOUT_MS / 1000,
        cached_statements=256,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _with_busy_retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
        conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException:
        conn.close()
        raise
    return conn


def check_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise ConfigurationError(
            f"SQLite {sqlite3.sqlite_version} is too old: Conveyor needs 3.35 or newer"
        )


def translate(exc: sqlite3.Error) -> BackendError:
    """A driver error as a Conveyor error; the caller raises it ``from exc``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
        return BackendUnavailable(f"SQLite: {exc}")
    return BackendError(f"SQLite: {exc}")


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY_CODES


def _with_busy_retry(fn: Callable[[], T]) -> T:
    """Run ``fn``; on SQLITE_BUSY/LOCKED (after SQLite's own busy_timeout wait) run it again,
    a few times, with a short growing pause. ``fn`` must be safe to repeat (a transaction
    that was rolled back)."""
    for attempt in range(BUSY_RETRIES + 1):
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or attempt == BUSY_RETRIES:
                raise
            time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def run_immediate(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception.
    Retried as a whole when SQLite stays busy (work is repeatable: nothing was committed)."""

    def once() -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    return _with_busy_retry(once)


class Database:
    """The writer, reader and watcher threads of one file, and their connections."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="conveyor-sqlite-w")
        self._reader_pool = ThreadPoolExecutor(
            READER_THREADS, thread_name_prefix="conveyor-sqlite-r"
        )
        self._writer: sqlite3.Connection | None = None
        self.watcher = Watcher(path, connect)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    async def open(self) -> None:
        def open_writer() -> None:
            self._writer = connect(self.path)

        await self._submit(self._writer_pool, open_writer)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction on the writer thread."""
        return await self._submit(self._writer_pool, partial(self._write_now, work))

    async def write_undoable(
        self,
        work: Callable[[sqlite3.Connection], T],
        undo: Callable[[sqlite3.Connection, T], object],
    ) -> T:
        """Like ``write``; if the caller is cancelled while ``work`` runs (its commit cannot
        be stopped), ``undo(conn, result)`` runs next on the writer thread in a transaction
        of its own. Claims use it, so that a cancelled claim releases its jobs at once
        instead of leaving them running until their leases expire."""

        def compensate(done: Future[T]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            result = done.result()
            with contextlib.suppress(RuntimeError):  # the pool is shutting down
                self._writer_pool.submit(self._write_now, lambda conn: undo(conn, result))

        if self._closed:
            raise BackendError("the SQLite backend is closed")
        running = self._writer_pool.submit(self._write_now, work)
        try:
            return await asyncio.wrap_future(running)
        except asyncio.CancelledError:
            running.add_done_callback(compensate)
            raise
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    async def write_raw(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the writer connection with no transaction around it (migrations
        manage their own)."""
        return await self._submit(self._writer_pool, lambda: work(self._writer_conn()))

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on a reader connection (autocommit: each statement sees the latest
        commit; wrap in a transaction in ``work`` when several statements must agree)."""
        return await self._submit(self._reader_pool, partial(self._read_now, work))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._close_all)

    def _write_now(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return run_immediate(self._writer_conn(), work)

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            raise BackendError("the SQLite backend is not open: await backend.open() first")
        return self._writer

    def _read_now(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return _with_busy_retry(lambda: _in_read_txn(conn, work))

    async def _submit(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        if self._closed:
            raise BackendError("the SQLite backend is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, fn)
        except ConveyorError:
            raise
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _close_all(self) -> None:
        self.watcher.close()
        for pool in (self._writer_pool, self._reader_pool):
            pool.shutdown(wait=True)
        conns = [self._writer, *self._readers]
        self._writer = None
        self._readers.clear()
        for conn in conns:
            if conn is not None:
                conn.close()


def _in_read_txn(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    # A deferred BEGIN that only reads never needs a write lock, so it cannot hit the
    # upgrade deadlock; it gives multi-statement reads (a page + its count) one snapshot.
    conn.execute("BEGIN")
    try:
        return work(conn)
    finally:
        conn.execute("COMMIT")
