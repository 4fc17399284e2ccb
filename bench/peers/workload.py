"""The identical workloads, run against one ``Adapter`` (one system on one backend).

1. throughput: ``single`` jobs enqueued one call each (single-enqueue rate), then ``jobs``
   no-op jobs through the system's bulk path (bulk-enqueue rate), both before any worker
   runs; then 2 worker processes start and process all of them: processed jobs/s = jobs /
   (last end - first start) from the ledger, so worker start-up is not counted;
2. pickup latency: the same, now idle, workers; ``latency_jobs`` enqueued one at a time at
   ``rate``/s; latency = job start - the instant just before the enqueue call;
3. realistic mix: ``mix_jobs`` jobs sleeping 1-50 ms (fixed per job id), fresh workers with
   ``mix_concurrency`` per process (or the system's equivalent); processed jobs/s;
4. RSS of every process of the worker command trees, taken before they are stopped;
5. CPU per processed job in the throughput phase: user + system time of the worker command
   trees and of the backend's server (every process of it; ``$BENCH_SERVER_PIDS``, set by
   compare.py; none for SQLite, whose work is done in the workers) from the moment a tenth
   of the jobs have run (worker start-up left out) to the last one, divided by the jobs that
   started in that window (their start times are in the ledger). Processes that exit in the
   window are counted through their parent's reaped-children times.

Each phase counts lost and duplicated jobs from the ledger; a phase with either is FAILED,
and its rate is not reported as a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import psutil

from peers.ledger import LedgerReader

TP_BASE = 0
LAT_BASE = 10_000_000
MIX_BASE = 20_000_000


@dataclass
class Spec:
    jobs: int = 20_000
    single: int = 2_000
    latency_jobs: int = 2_000
    rate: float = 200.0
    mix_jobs: int = 5_000
    concurrency: int = 10
    mix_concurrency: int = 100
    processes: int = 2
    phase_timeout: float = 300.0
    batch: int = 1000


class Adapter(Protocol):
    system: str
    backend: str
    notes: str

    def setup(self) -> None: ...
    def enqueue_one(self, job_id: int, sleep: bool) -> None: ...
    def enqueue_bulk(self, ids: Sequence[int], sleep: bool) -> None: ...
    def worker_commands(self, spec: Spec, mix: bool) -> list[list[str]]: ...
    def close(self) -> None: ...


@runtime_checkable
class AsyncAdapter(Adapter, Protocol):
    """An asyncio library: also enqueues from inside a running loop, on its ``runner``."""

    runner: asyncio.Runner

    async def enqueue_one_async(self, job_id: int, sleep: bool) -> None: ...


def one_calls(a: Adapter, ids: range, rate: float | None = None) -> dict[int, int]:
    """Enqueue ``ids`` one call each, at ``rate`` per second when given (else back to back);
    returns ``time.time_ns()`` taken just before each call. An asyncio library (an adapter
    with ``enqueue_one_async``) is driven from inside one running event loop, the way an
    async application calls it: an ``asyncio.Runner.run`` per call would charge every
    asyncio library about 0.1 ms per call of task set-up and SIGINT-handler swapping that
    no application pays (docs/performance.md, "Sixth pass")."""
    before: dict[int, int] = {}
    start = time.perf_counter()

    def delay(n: int) -> float:
        return 0.0 if rate is None else start + n / rate - time.perf_counter()

    if not isinstance(a, AsyncAdapter):
        for n, i in enumerate(ids):
            if (d := delay(n)) > 0:
                time.sleep(d)
            before[i] = time.time_ns()
            a.enqueue_one(i, False)
        return before

    async def drive(a: AsyncAdapter) -> None:
        for n, i in enumerate(ids):
            if (d := delay(n)) > 0:
                await asyncio.sleep(d)
            before[i] = time.time_ns()
            await a.enqueue_one_async(i, False)

    a.runner.run(drive(a))
    return before


@dataclass
class Result:
    system: str
    backend: str
    notes: str = ""
    enqueue_single: float | None = None
    enqueue_bulk: float | None = None
    processed: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    mix_processed: float | None = None
    rss_max_mib: float | None = None
    rss_sum_mib: float | None = None
    cpu_us_per_job: dict[str, float] = field(default_factory=dict)  # workers, server
    verified: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    """User + system CPU of the processes ``roots`` and everything below them, plus what
    their exited children used (reaped-children times): a difference of two readings counts
    a process that ended in between too."""
    total = 0.0
    for pid in roots:
        try:
            root = psutil.Process(pid)
            times = root.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for proc in root.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = proc.cpu_times()
                    total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def server_pids() -> list[int]:
    return [int(p) for p in os.environ.get("BENCH_SERVER_PIDS", "").split(",") if p.strip()]


class Workers:
    """Worker command trees started for one phase; stopped (by PID) at the end."""

    def __init__(self, commands: list[list[str]], env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.procs = [
            subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
            for cmd in commands
        ]
        pids = os.environ.get("BENCH_PIDFILE")
        if pids:
            with open(pids, "a") as f:
                f.writelines(f"{p.pid}\n" for p in self.procs)

    def tree(self) -> list[psutil.Process]:
        out: list[psutil.Process] = []
        for p in self.procs:
            try:
                root = psutil.Process(p.pid)
                out += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return out

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds([p.pid for p in self.procs])

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.args[:3]} exited with {p.returncode}")

    def rss_mib(self) -> tuple[float, float]:
        values = []
        for proc in self.tree():
            try:
                values.append(proc.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        return max(values), sum(values)

    def stop(self) -> None:
        every = self.tree()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(deadline - time.monotonic(), 0.1))
        for proc in every:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        for p in self.procs:
            p.wait(10)
        self.log.close()


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """The same method as bench/throughput.py (inclusive quantiles)."""
    ordered = sorted(values_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


def wait_seen(
    ledger: LedgerReader, ids: range, count: int, workers: Workers, deadline: float, poll: float
) -> None:
    """Wait until ``count`` of ``ids`` ran (or ``time.monotonic()`` passes ``deadline``),
    reading the ledger every ``poll`` seconds. Counts what each read adds: scanning every id
    on each read would cost the harness a millisecond per read, next to the workers."""
    ledger.poll()
    seen = ledger.seen(ids)
    while seen < count:
        workers.check_alive()
        if time.monotonic() > deadline:
            return
        time.sleep(poll)
        seen += sum(1 for i in ledger.poll() if i in ids)


def wait_for(
    ledger: LedgerReader,
    ids: range,
    workers: Workers,
    timeout: float,
    when_seen: Callable[[], None] | None = None,
) -> str:
    """Wait until every id ran (or the timeout), call ``when_seen``, then settle briefly for
    duplicates."""
    wait_seen(ledger, ids, len(ids), workers, time.monotonic() + timeout, 0.05)
    if when_seen is not None:
        when_seen()
    time.sleep(0.3)
    ledger.poll()
    lost, dup = ledger.count(ids)
    if lost or dup:
        timed_out = " (timed out)" if lost else ""
        return f"FAILED: lost={lost} duplicated={dup}{timed_out}"
    return "ok"


def timed(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def throughput(
    a: Adapter, spec: Spec, ledger: LedgerReader, env: dict[str, str], log: Path, res: Result
) -> None:
    single = range(TP_BASE, TP_BASE + spec.single)
    bulk = range(TP_BASE + spec.single, TP_BASE + spec.single + spec.jobs)
    start = time.perf_counter()
    one_calls(a, single)
    res.enqueue_single = spec.single / (time.perf_counter() - start)
    start = time.perf_counter()
    for lo in range(bulk.start, bulk.stop, spec.batch):
        a.enqueue_bulk(range(lo, min(lo + spec.batch, bulk.stop)), False)
    res.enqueue_bulk = spec.jobs / (time.perf_counter() - start)
    env = {**env, "BENCH_CONCURRENCY": str(spec.concurrency)}
    workers = Workers(a.worker_commands(spec, mix=False), env, log)
    try:
        everything = range(TP_BASE, bulk.stop)
        deadline = time.monotonic() + spec.phase_timeout
        wait_seen(ledger, everything, len(everything) // 10, workers, deadline, 0.01)
        servers = server_pids()
        start = (time.time_ns(), workers.cpu_seconds(), tree_cpu_seconds(servers))
        end: list[float] = []

        def at_end() -> None:
            end.extend((workers.cpu_seconds(), tree_cpu_seconds(servers)))

        res.verified["throughput"] = wait_for(
            ledger, everything, workers, max(deadline - time.monotonic(), 0.0), at_end
        )
        if res.verified["throughput"] == "ok":
            res.processed = ledger.span_rate(everything)
            jobs = ledger.started_since(everything, start[0])
            if jobs:
                res.cpu_us_per_job = {
                    "workers": (end[0] - start[1]) / jobs * 1e6,
                    "server": (end[1] - start[2]) / jobs * 1e6,
                }
        time.sleep(1.0)  # idle workers
        latency(a, spec, ledger, workers, res)
    finally:
        workers.stop()


def latency(a: Adapter, spec: Spec, ledger: LedgerReader, workers: Workers, res: Result) -> None:
    ids = range(LAT_BASE, LAT_BASE + spec.latency_jobs)
    enqueued = one_calls(a, ids, spec.rate)
    res.verified["latency"] = wait_for(ledger, ids, workers, spec.phase_timeout)
    got = [i for i in ids if i in ledger.runs]
    if got:
        res.latency_ms = percentiles([(ledger.first_start(i) - enqueued[i]) / 1e6 for i in got])


def mix(
    a: Adapter, spec: Spec, ledger: LedgerReader, env: dict[str, str], log: Path, res: Result
) -> None:
    ids = range(MIX_BASE, MIX_BASE + spec.mix_jobs)
    for lo in range(ids.start, ids.stop, spec.batch):
        a.enqueue_bulk(range(lo, min(lo + spec.batch, ids.stop)), True)
    env = {**env, "BENCH_CONCURRENCY": str(spec.mix_concurrency)}
    workers = Workers(a.worker_commands(spec, mix=True), env, log)
    try:
        res.verified["mix"] = wait_for(ledger, ids, workers, spec.phase_timeout)
        if res.verified["mix"] == "ok":
            res.mix_processed = ledger.span_rate(ids)
        res.rss_max_mib, res.rss_sum_mib = workers.rss_mib()
    finally:
        workers.stop()


def run(a: Adapter, spec: Spec, env: dict[str, str], ledger_dir: Path, log: Path) -> Result:
    res = Result(a.system, a.backend, a.notes)
    ledger = LedgerReader(ledger_dir)
    try:
        a.setup()
        throughput(a, spec, ledger, env, log, res)
        mix(a, spec, ledger, env, log, res)
    except Exception as exc:  # reported in the table, the next system still runs
        res.error = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        a.close()
    return res
