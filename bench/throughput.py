"""Throughput and pickup latency of Conveyor's engines, with real worker processes.

For each backend (SQLite, PostgreSQL, Redis):

1. **enqueue**: N no-op jobs stored with ``enqueue_many`` in batches (jobs/s);
2. **processing**: ``conveyor worker --processes 2`` started on the full queue; throughput is
   N / (last ``finished_at`` - first ``started_at``), both from the backend's clock, so worker
   start-up is not counted. Verified: every job completed, each with exactly one attempt (a
   duplicate run would need a rescue, which charges a second attempt), none missing;
3. **pickup latency**: the same (now idle) workers; jobs enqueued one at a time at a steady
   rate; latency = ``started_at - created_at`` of each job (backend clock) -> p50/p95/p99/max.

Servers are throwaway ones from ``tests/services.py`` on 127.0.0.1 unless ``--postgres-url``
/ ``--redis-url`` are given. Durability settings are printed with the results.

    python bench/throughput.py [--backends sqlite,postgresql,redis] [--jobs 20000] [--quick]

Writes a Markdown table to stdout and to ``bench/results-throughput.md``. ``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from conveyor.app import Conveyor  # noqa: E402
from conveyor.backend import Backend, JobFilter, ListRequest  # noqa: E402
from conveyor.jobs import Job, JobStatus  # noqa: E402
from conveyor.task import Task  # noqa: E402

KIND = "bench.noop"
QUEUE = "bench"

# The worker processes import this module as ``throughput`` (``--app throughput:app``).
app = Conveyor()


async def noop() -> None:
    return None


app.task(name=KIND, queue=QUEUE, max_attempts=3)(noop)


@dataclass
class Result:
    backend: str
    durability: str
    jobs: int
    enqueue_rate: float
    process_rate: float
    verified: str
    latency_ms: dict[str, float]
    load: float  # 1-minute load average when the backend's run started


# ------------------------------------------------------------------------------ servers


@contextmanager
def servers(args: argparse.Namespace) -> Iterator[dict[str, tuple[str, str]]]:
    """backend name -> (url, durability description)."""
    from tests.services import PostgresServer, RedisServer

    urls: dict[str, tuple[str, str]] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conveyor-bench-")))
        for name in args.backends:
            if name == "sqlite":
                urls[name] = (f"sqlite:///{tmp / 'bench.db'}", "WAL, engine defaults")
            elif name == "postgresql" and args.postgres_url:
                urls[name] = (args.postgres_url, "external server")
            elif name == "postgresql":
                pg = PostgresServer(fsync=args.fsync).init().start()
                stack.callback(pg.destroy)
                sync = "on" if args.fsync else "off"
                urls[name] = (pg.dsn("postgres"), f"fsync={sync}, synchronous_commit={sync}")
            elif name == "redis" and args.redis_url:
                urls[name] = (args.redis_url, "external server")
            elif name == "redis":
                fsync = "always" if args.fsync else "no"
                rs = RedisServer(appendonly=True, appendfsync=fsync).start()
                stack.callback(rs.destroy)
                urls[name] = (f"{rs.url}?prefix=bench", f"appendonly yes, appendfsync {fsync}")
            else:
                raise SystemExit(f"unknown backend {name!r}")
        yield urls


# ------------------------------------------------------------------------------ phases


async def all_jobs(backend: Backend, queue: str) -> list[Job]:
    jobs: list[Job] = []
    cursor: str | None = None
    while True:
        page = await backend.list_jobs(
            ListRequest(filter=JobFilter(queues=frozenset({queue})), limit=1000, cursor=cursor)
        )
        jobs.extend(page.jobs)
        if page.next_cursor is None:
            return jobs
        cursor = page.next_cursor


async def completed(backend: Backend, queue: str) -> int:
    for stats in await backend.stats():
        if stats.queue == queue:
            return stats.counts.get(JobStatus.COMPLETED, 0)
    return 0


async def wait_completed(
    backend: Backend, queue: str, n: int, timeout: float, worker: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while (done := await completed(backend, queue)) < n:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done}/{n} jobs completed after {timeout}s")
        await asyncio.sleep(0.05)


def start_workers(url: str, args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT / "src"), str(ROOT)])
    env["CONVEYOR_DATABASE_URL"] = url
    env.setdefault("CONVEYOR_LOG_LEVEL", "warning")
    cmd = [
        sys.executable, "-m", "conveyor", "worker",
        "--app", "throughput:app",
        "--queues", QUEUE,
        "--concurrency", str(args.concurrency),
        "--processes", str(args.processes),
        "--database-url", url,
    ]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def verify(jobs: Sequence[Job], ids: set[str]) -> str:
    got = {str(j.id) for j in jobs}
    lost = len(ids - got) + sum(1 for j in jobs if j.status is not JobStatus.COMPLETED)
    dup = sum(1 for j in jobs if j.attempts != 1)
    if lost or dup or got != ids:
        return f"FAILED: lost={lost} duplicated={dup} unexpected={len(got - ids)}"
    return "ok"


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


async def enqueue_phase(task: Task[[], None], n: int, batch: int) -> tuple[float, set[str]]:
    ids: set[str] = set()
    started = time.perf_counter()
    for start in range(0, n, batch):
        jobs = await task.enqueue_many_async([{}] * min(batch, n - start))
        ids.update(str(j.id) for j in jobs)
    return n / (time.perf_counter() - started), ids


async def latency_phase(task: Task[[], None], n: int, rate: float) -> set[str]:
    """One enqueue at a time at a steady ``rate`` per second (open loop)."""
    ids: set[str] = set()
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        job = await task.enqueue_async()
        ids.add(str(job.id))
    return ids


def span_rate(jobs: Sequence[Job]) -> float:
    first = min(j.started_at for j in jobs if j.started_at)
    last = max(j.finished_at for j in jobs if j.finished_at)
    return len(jobs) / max((last - first) / timedelta(seconds=1), 1e-9)


def pickup_ms(job: Job) -> float:
    assert job.started_at is not None
    return (job.started_at - job.created_at) / timedelta(milliseconds=1)


async def run_backend(name: str, url: str, durability: str, args: argparse.Namespace) -> Result:
    load = os.getloadavg()[0]
    cv = Conveyor(url)
    task = cv.task(name=KIND, queue=QUEUE, max_attempts=3)(noop)
    backend = await cv.backend()
    log = Path(tempfile.gettempdir()) / f"conveyor-bench-{name}-worker.log"
    try:
        enqueue_rate, ids = await enqueue_phase(task, args.jobs, args.batch)
        print(f"[{name}] enqueued {args.jobs} jobs: {enqueue_rate:,.0f}/s", file=sys.stderr)
        worker = start_workers(url, args, log)
        try:
            await wait_completed(backend, QUEUE, args.jobs, args.timeout, worker)
            jobs = await all_jobs(backend, QUEUE)
            process_rate = span_rate(jobs)
            verified = verify(jobs, ids)
            print(f"[{name}] processed: {process_rate:,.0f}/s ({verified})", file=sys.stderr)
            if args.pause_for_profile:
                print(f"[{name}] worker pid {worker.pid}; profiling window", file=sys.stderr)
            await asyncio.sleep(1.0)  # workers go idle (back to waiting for work)
            lat_ids = await latency_phase(task, args.latency_jobs, args.rate)
            total = args.jobs + args.latency_jobs
            await wait_completed(backend, QUEUE, total, 60, worker)
            lat_jobs = [j for j in await all_jobs(backend, QUEUE) if str(j.id) in lat_ids]
            lat_verified = verify(lat_jobs, lat_ids)
            if lat_verified != "ok":
                verified = f"{verified}; latency phase {lat_verified}"
            latency = percentiles([pickup_ms(j) for j in lat_jobs])
            print(f"[{name}] pickup: {latency}", file=sys.stderr)
        finally:
            stop_workers(worker)
    finally:
        await cv.aclose()
    return Result(name, durability, args.jobs, enqueue_rate, process_rate, verified, latency, load)


def stop_workers(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


# ------------------------------------------------------------------------------ report


def table(results: Sequence[Result], args: argparse.Namespace) -> str:
    lines = [
        "| backend | durability | enqueue jobs/s | processed jobs/s "
        "| pickup p50 ms | p95 ms | p99 ms | max ms | verified | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        lat = r.latency_ms
        lines.append(
            f"| {r.backend} | {r.durability} | {r.enqueue_rate:,.0f} | {r.process_rate:,.0f} "
            f"| {lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} "
            f"| {r.verified} | {r.load:.1f} |"
        )
    lines += [
        "",
        f"{args.jobs:,} no-op jobs enqueued with `enqueue_many` in batches of {args.batch}, "
        f"processed by `conveyor worker --processes {args.processes} "
        f"--concurrency {args.concurrency}`; pickup latency over {args.latency_jobs:,} jobs "
        f"enqueued one at a time at {args.rate:g}/s to idle workers "
        "(`started_at - created_at`, backend clock).",
        "`load`: the 1-minute load average when that backend's run began; on a shared "
        "machine, numbers taken under load above the CPU count are pessimistic.",
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}; {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", default="sqlite,postgresql,redis")
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=1000, help="jobs per enqueue_many call")
    p.add_argument("--concurrency", type=int, default=100, help="per worker process")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--latency-jobs", type=int, default=2000)
    p.add_argument("--rate", type=float, default=200.0, help="latency phase enqueues/s")
    p.add_argument("--quick", action="store_true", help="5,000 jobs, 400 latency jobs")
    p.add_argument("--postgres-url")
    p.add_argument("--redis-url")
    p.add_argument(
        "--no-fsync",
        dest="fsync",
        action="store_false",
        help="throwaway servers without fsync (default: fsync on)",
    )
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--pause-for-profile", action="store_true")
    p.add_argument("--output", type=Path, default=HERE / "results-throughput.md")
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.backends = ["postgresql" if b in ("postgres", "pg") else b for b in args.backends]
    if args.quick:
        args.jobs, args.latency_jobs = min(args.jobs, 5000), min(args.latency_jobs, 400)
    return args


async def run_all(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    with servers(args) as urls:
        for name in args.backends:
            url, durability = urls[name]
            results.append(await run_backend(name, url, durability, args))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    results = asyncio.run(run_all(args))
    report = table(results, args)
    print(report)
    args.output.write_text(f"# Throughput and pickup latency\n\n{report}\n")


if __name__ == "__main__":
    main()
