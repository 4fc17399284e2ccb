"""The execution ledger of the fault tests: a record of what really ran, kept OUTSIDE Conveyor.

A separate SQLite file (WAL) that Conveyor never touches. Two tables:

* ``enqueued(marker, job_id)``: one row per enqueue that Conveyor ACKNOWLEDGED (written by the
  producer after ``enqueue`` returned);
* ``executions(marker, job_id, attempt, pid, started, finished)``: one row per execution that
  ran to completion, written by the task itself (``tests/e2e/ledger_tasks.py``) before it
  returns, so a completion Conveyor stores is always preceded by its ledger row.

Durability: every row is committed before the task returns. With WAL and ``synchronous=NORMAL``
a commit is in the WAL file (the OS page cache) when ``commit()`` returns, which survives the
``kill -9`` of the process that wrote it (only an OS crash could lose it, and the tests do not
crash the OS). Writes from the tasks of one process are batched by one writer thread: each
task waits for the commit of the batch that holds its row.

``score`` checks the ledger the way Jepsen's total-queue checker does: lost (acknowledged,
never executed to completion), unexpected (executed, never enqueued), duplicated (executed
more than once), plus overlapping executions of one job (claimed twice concurrently).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LEDGER_ENV = "CONVEYOR_E2E_LEDGER"

SCHEMA = """
CREATE TABLE IF NOT EXISTS enqueued (
    marker TEXT PRIMARY KEY,
    job_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    marker TEXT NOT NULL,
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    finished REAL NOT NULL
);
"""


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def create(path: str | Path) -> Path:
    """Create an empty ledger file (idempotent)."""
    conn = connect(path)
    try:
        conn.executescript(SCHEMA)
    finally:
        conn.close()
    return Path(path)


def record_enqueued(path: str | Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Record acknowledged enqueues: (marker, job_id) pairs, in one transaction."""
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR IGNORE INTO enqueued(marker, job_id) VALUES (?, ?)", pairs)
        conn.execute("COMMIT")
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Execution:
    marker: str
    job_id: str
    attempt: int
    pid: int
    started: float
    finished: float


class LedgerWriter:
    """Per-process batching writer: ``await writer.record(execution)`` returns once the row
    is committed. One thread owns the connection; it drains every waiting row into one
    ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._queue: queue.SimpleQueue[
            tuple[Execution, asyncio.AbstractEventLoop, asyncio.Future[None]]
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="e2e-ledger", daemon=True)
        self._started = False
        self._lock = threading.Lock()

    async def record(self, execution: Execution) -> None:
        with self._lock:
            if not self._started:
                self._thread.start()
                self._started = True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((execution, loop, done))
        # Shielded: once the row is handed over, the task waits for its commit even if it
        # is being cancelled, so a row is never half-way when the task says it finished.
        await asyncio.shield(done)

    def _run(self) -> None:
        conn = connect(self._path)
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            error: BaseException | None = None
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO executions(marker, job_id, attempt, pid, started, finished)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (e.marker, e.job_id, e.attempt, e.pid, e.started, e.finished)
                        for e, _, _ in batch
                    ],
                )
                conn.execute("COMMIT")
            except BaseException as exc:  # report to every waiter, then keep serving
                error = exc
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            for _, loop, fut in batch:
                loop.call_soon_threadsafe(_settle, fut, error)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(RuntimeError(f"ledger write failed: {error!r}"))


def current_pid() -> int:
    return os.getpid()


def now() -> float:
    return time.time()


# ------------------------------------------------------------------------------ reading


def executions(path: str | Path) -> list[Execution]:
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT marker, job_id, attempt, pid, started, finished FROM executions ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [Execution(*row) for row in rows]


def execution_count(path: str | Path) -> int:
    conn = connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM executions").fetchone()[0])
    finally:
        conn.close()


def distinct_executed(path: str | Path) -> int:
    conn = connect(path)
    try:
        return int(conn.execute("SELECT count(DISTINCT marker) FROM executions").fetchone()[0])
    finally:
        conn.close()


def pids(path: str | Path) -> set[int]:
    conn = connect(path)
    try:
        return {int(r[0]) for r in conn.execute("SELECT DISTINCT pid FROM executions")}
    finally:
        conn.close()


def enqueued(path: str | Path) -> dict[str, str]:
    conn = connect(path)
    try:
        return dict(conn.execute("SELECT marker, job_id FROM enqueued").fetchall())
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Score:
    """Jepsen's total-queue verdict over one ledger."""

    acknowledged: int
    executions: int
    lost: tuple[str, ...]  # acknowledged markers never executed to completion
    unexpected: tuple[str, ...]  # executed markers never acknowledged
    duplicated: int  # executions beyond the first, summed over markers
    overlapping: tuple[str, ...]  # markers with two executions running at the same time
    duplicated_jobs: frozenset[str] = frozenset()  # job ids executed more than once
    attempts: Counter[int] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"acknowledged={self.acknowledged} executions={self.executions} "
            f"lost={len(self.lost)} unexpected={len(self.unexpected)} "
            f"duplicated={self.duplicated} overlapping={len(self.overlapping)} "
            f"attempts={dict(sorted(self.attempts.items()))}"
        )


def score(path: str | Path) -> Score:
    acked = enqueued(path)
    runs = executions(path)
    by_marker: dict[str, list[Execution]] = defaultdict(list)
    for run in runs:
        by_marker[run.marker].append(run)
    lost = tuple(sorted(m for m in acked if m not in by_marker))
    unexpected = tuple(
        sorted(m for m, rs in by_marker.items() if m not in acked or rs[0].job_id != acked[m])
    )
    duplicated = sum(len(rs) - 1 for rs in by_marker.values())
    overlapping = tuple(sorted(m for m, rs in by_marker.items() if _overlap(rs)))
    return Score(
        acknowledged=len(acked),
        executions=len(runs),
        lost=lost,
        unexpected=unexpected,
        duplicated=duplicated,
        overlapping=overlapping,
        duplicated_jobs=frozenset(rs[0].job_id for rs in by_marker.values() if len(rs) > 1),
        attempts=Counter(r.attempt for r in runs),
    )


def _overlap(runs: list[Execution]) -> bool:
    if len(runs) < 2:
        return False
    ordered = sorted(runs, key=lambda r: r.started)
    return any(b.started < a.finished for a, b in itertools.pairwise(ordered))
