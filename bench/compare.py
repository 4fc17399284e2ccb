"""Conveyor (SQLite, PostgreSQL, Redis) against the peer job systems, side by side in one run.

    bash bench/setup-peers.sh                       # once: bench/.venv with every peer
    bench/.venv/bin/python bench/compare.py         # full: 2 rounds, 20,000 jobs
    bench/.venv/bin/python bench/compare.py --quick # smoke: 1 round, 2,000 jobs
    bench/.venv/bin/python bench/compare.py --only conveyor,pgqueuer,huey/sqlite

One throwaway PostgreSQL and one Redis (``tests/services.py``) serve the whole run; every
(system, backend) run gets a fresh database / a flushed Redis / a new SQLite file, runs in
its own process (``peers/run_one.py``) under ``--timeout``, and has every worker process it
started killed by PID afterwards; its logs stay in ``bench/.work/peers/<run>/``. The order
alternates Conveyor with its peers, reversed on every other round. The workloads are
described in ``peers/workload.py``. Writes ``bench/results.md`` (medians over the rounds,
and Conveyor's ratio to the fastest peer on the same backend) and the raw runs to
``bench/results-peers.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "src"), str(ROOT)]

from peers.report import render  # noqa: E402
from peers.workload import Spec  # noqa: E402

ORDER = [
    ("conveyor", "sqlite"), ("huey", "sqlite"),
    ("conveyor", "postgresql"), ("procrastinate", "postgresql"), ("pgqueuer", "postgresql"),
    ("conveyor", "redis"), ("celery", "redis"), ("rq", "redis"), ("dramatiq", "redis"),
    ("arq", "redis"), ("huey", "redis"), ("taskiq", "redis"),
]  # fmt: skip
PACKAGES = ["conveyor", "celery", "rq", "dramatiq", "arq", "huey", "taskiq", "taskiq-redis",
            "procrastinate", "pgqueuer", "psycopg", "asyncpg", "redis"]  # fmt: skip


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=20_000, help="bulk-enqueued no-op jobs")
    p.add_argument("--single", type=int, default=2_000, help="jobs enqueued one call each")
    p.add_argument("--latency-jobs", type=int, default=2_000)
    p.add_argument("--rate", type=float, default=200.0, help="latency phase enqueues/s")
    p.add_argument("--mix-jobs", type=int, default=5_000)
    p.add_argument("--concurrency", type=int, default=10, help="per process, throughput")
    p.add_argument("--mix-concurrency", type=int, default=100, help="per process, mix")
    p.add_argument("--only", default="", help="systems or system/backend, comma-separated")
    p.add_argument("--quick", action="store_true", help="1 round, 2,000 jobs, short phases")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per (system, backend)")
    p.add_argument("--no-fsync", dest="fsync", action="store_false",
                   help="servers without fsync (default: PostgreSQL fsync + synchronous_commit "
                   "on, Redis appendonly with appendfsync always)")  # fmt: skip
    p.add_argument(
        "--redis-appendfsync",
        choices=("always", "everysec", "no"),
        default=None,
        help="override Redis's appendfsync (default: always, or no with --no-fsync)",
    )
    p.add_argument("--output", type=Path, default=HERE / "results.md")
    p.add_argument("--raw", type=Path, default=HERE / "results-peers.json")
    p.add_argument(
        "--workdir",
        type=Path,
        default=HERE / ".work" / "peers",
        help="per-run logs, ledgers and SQLite files (emptied at start)",
    )
    args = p.parse_args()
    if args.quick:
        args.rounds = 1 if args.rounds == 2 else args.rounds
        args.jobs, args.single = min(args.jobs, 2000), min(args.single, 200)
        args.latency_jobs, args.mix_jobs = min(args.latency_jobs, 400), min(args.mix_jobs, 500)
        args.timeout = min(args.timeout, 300.0)
    return args


def selected(only: str) -> list[tuple[str, str]]:
    if not only:
        return ORDER
    wanted = {w.strip().replace("postgres/", "postgresql/") for w in only.split(",") if w.strip()}
    return [(s, b) for s, b in ORDER if s in wanted or f"{s}/{b}" in wanted]


@contextmanager
def servers(args: argparse.Namespace, needed: set[str]) -> Iterator[dict[str, object]]:
    from tests.services import PostgresServer, RedisServer

    out: dict[str, object] = {}
    with ExitStack() as stack:
        if "postgresql" in needed:
            pg = PostgresServer(fsync=args.fsync).init().start()
            stack.callback(pg.destroy)
            out["postgresql"] = pg
        if "redis" in needed:
            fsync = args.redis_appendfsync or ("always" if args.fsync else "no")
            rs = RedisServer(appendonly=True, appendfsync=fsync).start()
            stack.callback(rs.destroy)
            out["redis"] = rs
        yield out


@contextmanager
def fresh_store(backend: str, srv: dict[str, object], name: str, tmp: Path) -> Iterator[str]:
    """A URL to an empty store for one run (dropped/flushed afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / (name + '.db')}"
    elif backend == "redis":
        import redis

        url = srv["redis"].url  # type: ignore[attr-defined]
        client = redis.Redis.from_url(url)
        client.flushall()
        try:
            yield url
        finally:
            client.flushall()
            client.close()
    else:
        import psycopg

        pg = srv["postgresql"]
        with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield pg.dsn(name)  # type: ignore[attr-defined]
        finally:
            with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:  # type: ignore[attr-defined]
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kill_pids(pids: list[int]) -> None:
    """Kill what a run started (by PID), with everything below it."""
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for proc in [*root.children(recursive=True), root]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()


def server_pids(backend: str, srv: dict[str, object]) -> list[int]:
    """The root process of the backend's server (its children are found from it)."""
    if backend in ("postgresql", "redis"):
        return [srv[backend].pid]  # type: ignore[attr-defined]
    return []


def run_one(
    system: str, backend: str, url: str, spec: Spec, timeout: float, work: Path, pids: list[int]
) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out, pidfile = work / "result.json", work / "pids"
    cmd = [sys.executable, "-m", "peers.run_one", "--system", system, "--backend", backend,
           "--url", url, "--spec", json.dumps(asdict(spec)), "--workdir", str(work),
           "--out", str(out)]  # fmt: skip
    # This tree's src first: a git worktree benchmarks its own code, not the editable install's.
    path = os.pathsep.join([str(HERE), str(ROOT / "src")])
    env = {**os.environ, "BENCH_PIDFILE": str(pidfile), "PYTHONPATH": path,
           "BENCH_SERVER_PIDS": ",".join(map(str, pids))}  # fmt: skip
    with (work / "run.log").open("wb") as log:
        child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=HERE)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_pids([child.pid])
            child.wait(10)
    started = [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []
    kill_pids(started)  # normally gone already; a hung or killed run leaves them behind
    if out.exists():
        return json.loads(out.read_text())
    tail = (work / "run.log").read_text(errors="replace")[-300:]
    reason = f"timed out after {timeout:.0f}s" if child.returncode in (-9, None) else "crashed"
    return {"system": system, "backend": backend, "error": f"{reason}: {tail}"}


def machine() -> dict[str, str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())  # fmt: skip
    versions = []
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{name} {importlib.metadata.version(name)}")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "python": platform.python_version(),
        "os": platform.platform(),
        "versions": ", ".join(versions),
    }


def main() -> None:
    args = parse_args()
    if importlib.util.find_spec("celery") is None and (HERE / ".venv/bin/python").exists():
        os.execv(str(HERE / ".venv/bin/python"), [str(HERE / ".venv/bin/python"), *sys.argv])
    spec = Spec(jobs=args.jobs, single=args.single, latency_jobs=args.latency_jobs,
                rate=args.rate, mix_jobs=args.mix_jobs, concurrency=args.concurrency,
                mix_concurrency=args.mix_concurrency,
                phase_timeout=max(60.0, args.timeout / 2))  # fmt: skip
    plan = selected(args.only)
    runs: list[dict] = []
    began = time.monotonic()
    with ExitStack() as stack:
        srv = stack.enter_context(servers(args, {b for _, b in plan}))
        tmp = args.workdir
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for rnd in range(args.rounds):
            for system, backend in plan if rnd % 2 == 0 else plan[::-1]:
                name = f"r{rnd}_{system}_{backend}"
                t0, load = time.monotonic(), os.getloadavg()[0]
                with fresh_store(backend, srv, name, tmp) as url:
                    pids = server_pids(backend, srv)
                    res = run_one(system, backend, url, spec, args.timeout, tmp / name, pids)
                res["round"], res["seconds"] = rnd, round(time.monotonic() - t0, 1)
                res["load1"] = round(load, 2)
                runs.append(res)
                print(f"[{time.monotonic() - began:6.0f}s] {system}/{backend} round {rnd}: "
                      f"{json.dumps({k: v for k, v in res.items() if k != 'notes'})}",
                      file=sys.stderr, flush=True)  # fmt: skip
    pg_sync = "on" if args.fsync else "off"
    aof = args.redis_appendfsync or ("always" if args.fsync else "no")
    durability = (
        f"PostgreSQL fsync={pg_sync}, synchronous_commit={pg_sync}; "
        f"Redis appendonly yes, appendfsync {aof}"
    )
    info = {
        **machine(),
        "durability": durability,
        "total": f"{(time.monotonic() - began) / 60:.1f} min",
        "rounds": str(args.rounds),
    }
    args.raw.write_text(json.dumps({"machine": info, "spec": asdict(spec), "runs": runs}, indent=1))
    report = render(runs, spec, info)
    args.output.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
