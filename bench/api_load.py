"""HTTP load on ``conveyor api`` over PostgreSQL: single enqueues and batches of 100.

1. A throwaway PostgreSQL from ``tests/services.py`` (or ``--postgres-url``), migrated.
2. ``conveyor api --no-access-log [--workers N]`` as a subprocess on 127.0.0.1.
3. The load generator in a *separate process* (this script re-run with ``--generate``): plain
   asyncio HTTP/1.1 over keep-alive connections (``--concurrency`` of them, each with one
   request in flight), for ``--duration`` seconds per scenario after a short warm-up.
   Each request is timed from write to the last byte of its response.

Scenarios: ``POST /jobs`` (one job) and ``POST /jobs/batch`` (``--batch`` jobs). Reported:
requests/s, jobs/s, p50/p99 latency, errors. Jobs use ``allow_unknown_kind`` (no worker runs).

    python bench/api_load.py [--duration 30] [--concurrency 64] [--workers 1] [--batch 100]

Writes a Markdown table to stdout and to ``bench/results-api.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

# ------------------------------------------------------------------------ load generator


def request_bytes(path: str, body: bytes, host: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


def body_for(scenario: str, batch: int, n: int) -> tuple[str, bytes]:
    job = {"kind": "bench.noop", "payload": {"n": n}, "allow_unknown_kind": True}
    if scenario == "single":
        return "/jobs", json.dumps(job).encode()
    jobs = [{**job, "payload": {"n": n, "i": i}} for i in range(batch)]
    return "/jobs/batch", json.dumps({"jobs": jobs}).encode()


async def connection_loop(
    host: str,
    port: int,
    scenario: str,
    batch: int,
    stop_at: float,
    record_from: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            n += 1
            path, body = body_for(scenario, batch, n)
            writer.write(request_bytes(path, body, f"{host}:{port}"))
            began = time.perf_counter()
            status = await read_response(reader)
            elapsed = time.perf_counter() - began
            if began >= record_from:
                if status in (200, 201):
                    latencies.append(elapsed)
                else:
                    errors.append(status)
    finally:
        writer.close()


async def generate(args: argparse.Namespace) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    record_from = start + args.warmup
    stop_at = record_from + args.duration
    await asyncio.gather(
        *(
            connection_loop(
                args.host,
                args.port,
                args.scenario,
                args.batch,
                stop_at,
                record_from,
                latencies,
                errors,
            )
            for _ in range(args.concurrency)
        )
    )
    per_request = args.batch if args.scenario == "batch" else 1
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / args.duration,
        "jobs_per_s": len(latencies) * per_request / args.duration,
        "p50_ms": 1000 * statistics.median(ordered) if ordered else 0.0,
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0,
    }


# ------------------------------------------------------------------------ orchestration


def wait_ready(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API at {url} did not become ready")


def postgres_url(stack: ExitStack, given: str | None) -> str:
    if given:
        return given
    import psycopg
    from tests.services import PostgresServer

    server = PostgresServer(fsync=True).init().start()
    stack.callback(server.destroy)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "bench"')
    return server.dsn("bench")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of ``pid`` and its live children (uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_scenario(args: argparse.Namespace, scenario: str, port: int) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--generate",
        "--scenario",
        scenario,
        "--port",
        str(port),
        "--duration",
        str(args.duration),
        "--concurrency",
        str(args.concurrency),
        "--batch",
        str(args.batch),
        "--warmup",
        str(args.warmup),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def orchestrate(args: argparse.Namespace) -> None:
    from tests.services import free_port

    with ExitStack() as stack:
        url = postgres_url(stack, args.postgres_url)
        subprocess.run(
            [sys.executable, "-m", "conveyor", "migrate", "--database-url", url],
            check=True,
            capture_output=True,
        )
        port = free_port()
        env = {**os.environ, "CONVEYOR_LOG_LEVEL": "warning"}
        api = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor",
                "api",
                "--port",
                str(port),
                "--database-url",
                url,
                "--no-access-log",
                "--workers",
                str(args.workers),
            ],
            env=env,
        )
        stack.callback(api.wait, 30)
        stack.callback(api.send_signal, signal.SIGINT)
        wait_ready(f"http://127.0.0.1:{port}")
        rows = []
        for scenario in args.scenarios.split(","):
            cpu_before = cpu_seconds(api.pid)
            result = run_scenario(args, scenario, port)
            cpu = cpu_seconds(api.pid) - cpu_before  # warm-up included: an upper bound
            total = result["requests"] * (1 + args.warmup / args.duration)
            result["api_cpu_ms_per_request"] = 1000 * cpu / max(total, 1)
            rows.append((scenario, result))
            print(f"{scenario}: {json.dumps(result)}", file=sys.stderr)
    report(args, rows)


def report(args: argparse.Namespace, rows: list[tuple[str, dict[str, float]]]) -> None:
    lines = [
        f"API load: concurrency {args.concurrency}, {args.duration:g} s per scenario, "
        f"`conveyor api --workers {args.workers}` on PostgreSQL (fsync on), "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load generator, API and "
        "PostgreSQL share the machine. Load average at the end: "
        + " / ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (1 / 5 / 15 min).",
        "",
        "| scenario | requests/s | jobs/s | p50 ms | p99 ms | errors | API CPU ms/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = {"single": "POST /jobs", "batch": f"POST /jobs/batch ({args.batch})"}
    for scenario, r in rows:
        lines.append(
            f"| {names[scenario]} | {r['rps']:,.0f} | {r['jobs_per_s']:,.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']:.0f} | "
            f"{r['api_cpu_ms_per_request']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "results-api.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="API processes")
    parser.add_argument("--scenarios", default="single,batch")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--profile", default=None, help="write py-spy stacks of the API here")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", default="single", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        print(json.dumps(asyncio.run(generate(args))))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
