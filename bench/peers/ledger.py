"""The side channel every job records through, identical for every system.

Worker side: ``record(job_id, start_ns, end_ns)`` appends to an in-process deque; a daemon
thread (one per process, re-created after ``fork``) writes the pending lines to
``$BENCH_LEDGER_DIR/<pid>.log`` every 20 ms and at exit. So a job costs one deque append,
not a write. ``time.time_ns()`` is comparable across processes on one machine.

Harness side: ``LedgerReader`` reads every file incrementally and counts, per job id, how
many times it ran: a job seen twice is a duplicate, one never seen is lost.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
import time
from pathlib import Path

FLUSH_EVERY_S = 0.02


class _Recorder:
    def __init__(self, directory: str) -> None:
        self.pid = os.getpid()
        self.pending: collections.deque[str] = collections.deque()
        self.path = Path(directory) / f"{self.pid}.log"
        self.file = self.path.open("a", encoding="ascii")
        self.lock = threading.Lock()
        thread = threading.Thread(target=self._loop, name="bench-ledger", daemon=True)
        thread.start()
        atexit.register(self.flush)

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            lines = []
            while self.pending:
                lines.append(self.pending.popleft())
            if lines:
                self.file.write("".join(lines))
                self.file.flush()


_recorder: _Recorder | None = None
_init_lock = threading.Lock()


def record(job_id: int, start_ns: int, end_ns: int) -> None:
    global _recorder
    rec = _recorder
    if rec is None or rec.pid != os.getpid():
        with _init_lock:
            rec = _recorder
            if rec is None or rec.pid != os.getpid():
                rec = _recorder = _Recorder(os.environ["BENCH_LEDGER_DIR"])
    rec.pending.append(f"{job_id} {start_ns} {end_ns}\n")


def sleep_seconds(job_id: int) -> float:
    """The realistic mix: 1-50 ms, pseudo-random but fixed per job id (Knuth hash)."""
    return (1 + ((job_id * 2654435761) & 0xFFFFFFFF) % 50) / 1000.0


class LedgerReader:
    """Incremental reader of a ledger directory (harness side)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, str] = {}
        self.runs: dict[int, list[tuple[int, int]]] = {}

    def poll(self) -> list[int]:
        """Read what the workers wrote since the last poll; returns the ids seen for the first
        time (so a caller can count as it goes instead of scanning every id)."""
        first: list[int] = []
        for path in self.directory.glob("*.log"):
            with path.open("r", encoding="ascii") as f:
                f.seek(self.offsets.get(path, 0))
                chunk = f.read()
                self.offsets[path] = f.tell()
            if not chunk:
                continue
            text = self.partial.pop(path, "") + chunk
            lines = text.split("\n")
            if lines[-1]:
                self.partial[path] = lines[-1]
            for line in lines[:-1]:
                job, start, end = line.split()
                runs = self.runs.setdefault(int(job), [])
                if not runs:
                    first.append(int(job))
                runs.append((int(start), int(end)))
        return first

    def seen(self, ids: range) -> int:
        return sum(1 for i in ids if i in self.runs)

    def count(self, ids: range) -> tuple[int, int]:
        """(lost, duplicated) among ``ids``."""
        lost = sum(1 for i in ids if i not in self.runs)
        dup = sum(len(self.runs[i]) - 1 for i in ids if i in self.runs)
        return lost, dup

    def span_rate(self, ids: range) -> float:
        """Jobs per second from the first start to the last end among ``ids``."""
        runs = [r for i in ids for r in self.runs.get(i, ())]
        first = min(s for s, _ in runs)
        last = max(e for _, e in runs)
        return len(ids) / max((last - first) / 1e9, 1e-9)

    def started_since(self, ids: range, since_ns: int) -> int:
        """How many runs of ``ids`` started at or after ``since_ns`` (``time.time_ns()``)."""
        return sum(1 for i in ids for s, _ in self.runs.get(i, ()) if s >= since_ns)

    def first_start(self, job_id: int) -> int:
        return min(s for s, _ in self.runs[job_id])
