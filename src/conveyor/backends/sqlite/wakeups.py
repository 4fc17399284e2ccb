"""Wake-ups for ``SQLiteBackend.wait_for_work``. SQLite has no cross-process notify, so:

* **in-process**: every ``SQLiteBackend`` in this process that writes work to a file (an
  enqueue, requeue, release, rescue, unpause) calls ``notify(path)``, which sets the events
  of everyone waiting on that file, whatever their event loop;
* **cross-process**: while anyone waits, a ``Watcher`` thread polls ``PRAGMA data_version``
  on its own connection every ``POLL_INTERVAL`` (a few microseconds each: it reads the WAL
  index in shared memory). The value changes whenever another connection has committed to
  the file, so an enqueue in another process wakes the waiters within a few milliseconds.
  Polling in a plain thread, not on the event loop, keeps an idle worker's cost near zero.

Any commit is a hint only; ``wait_for_work`` then confirms with ``claimable`` and returns
True only when one of the asked queues has a job claimable now, so commits to other queues
(or other workers' completions) do not wake it.

Called by ``SQLiteBackend`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from conveyor.backends.sqlite.sql import query
from conveyor.clock import to_micros

POLL_INTERVAL = timedelta(milliseconds=3)
ERROR_PAUSE = timedelta(milliseconds=100)
# Keep polling this long after the last waiter left: a worker waits again right after each
# claim, and one thread (one baseline) serves all those waits.
LINGER = timedelta(seconds=2)
_LINGER_POLLS = int(LINGER / POLL_INTERVAL)

_lock = threading.Lock()
_waiters: dict[Path, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}


def notify(path: Path) -> None:
    """Wake every waiter on ``path`` in this process (any thread, any loop)."""
    with _lock:
        waiters = list(_waiters.get(path, ()))
    for loop, event in waiters:
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
            loop.call_soon_threadsafe(event.set)


@contextlib.contextmanager
def registered(path: Path) -> Iterator[asyncio.Event]:
    """An event set by ``notify(path)`` while the block runs."""
    entry = (asyncio.get_running_loop(), asyncio.Event())
    with _lock:
        _waiters.setdefault(path, set()).add(entry)
    try:
        yield entry[1]
    finally:
        with _lock:
            bucket = _waiters.get(path)
            if bucket is not None:
                bucket.discard(entry)
                if not bucket:
                    del _waiters[path]


class Watcher:
    """Polls ``PRAGMA data_version`` while at least one waiter holds it; calls
    ``notify(path)`` on every change. One per open backend; the thread exits after
    ``LINGER`` without waiters."""

    def __init__(self, path: Path, connect: Callable[[Path], sqlite3.Connection]) -> None:
        self._path = path
        self._connect = connect
        self._lock = threading.Lock()
        self._users = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            self._users += 1
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="conveyor-sqlite-watch", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        seen: int | None = None
        idle_polls = 0
        try:
            while True:
                with self._lock:
                    idle_polls = 0 if self._users else idle_polls + 1
                    if idle_polls > _LINGER_POLLS:
                        self._thread = None  # under the lock: held() starts a new one
                        return
                try:
                    conn = conn or self._connect(self._path)
                    version = data_version(conn)
                except sqlite3.Error:
                    # Only a hint: waiters still time out and their callers poll.
                    if self._stop.wait(ERROR_PAUSE.total_seconds()):
                        return
                    continue
                if seen is not None and version != seen:
                    notify(self._path)
                seen = version
                if self._stop.wait(POLL_INTERVAL.total_seconds()):
                    return
        finally:
            if conn is not None:
                conn.close()


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection (this process or another) commits to the file."""
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)


def claimable(conn: sqlite3.Connection, queues: Sequence[str], now: datetime) -> bool:
    now_us = to_micros(now)
    statement = query("claimable")
    return any(conn.execute(statement, (queue, now_us)).fetchone() for queue in queues)
