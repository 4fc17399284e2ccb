"""Tasks for the worker integration tests. A module of its own (not a test module) so that
``cpu_bound`` tasks can be imported by the worker's child processes. State that tests read
lives in module-level dicts keyed by a per-test token passed in the payload."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

from conveyor import Conveyor, Discard, JobContext, Retry

app = Conveyor("memory://")

CALLS: Counter[str] = Counter()  # key -> executions
SEEN: dict[str, str] = {}  # key -> what the handler last reported
ORDER: defaultdict[str, list[int]] = defaultdict(list)
GATES: dict[str, threading.Event] = {}
LOCK = threading.Lock()
CONCURRENT: Counter[str] = Counter()
PEAK: Counter[str] = Counter()
FAST = timedelta(milliseconds=10)


def gate(key: str) -> threading.Event:
    with LOCK:
        return GATES.setdefault(key, threading.Event())


@app.task
async def add(a: int, b: int) -> int:
    return a + b


@app.task
def sync_add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b, "thread": threading.get_ident()}


@app.task(cpu_bound=True)
def cpu_pid(n: int) -> dict[str, int]:
    return {"pid": os.getpid(), "square": n * n}


@app.task(cpu_bound=True, timeout=timedelta(seconds=4), max_attempts=1)
def cpu_hang(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(120)


@app.task(max_attempts=5, retry_backoff=FAST)
async def fails_twice(key: str, ctx: JobContext) -> int:
    CALLS[key] += 1
    if ctx.attempt <= 2:
        raise ConnectionError(f"attempt {ctx.attempt} fails")
    return ctx.attempt


@app.task(max_attempts=3, retry_backoff=FAST)
def always_fails(key: str) -> None:
    CALLS[key] += 1
    raise ValueError(f"broken {key}")


@app.task(max_attempts=5)
async def discards(reason: str) -> None:
    raise Discard(reason)


@app.task(max_attempts=5)
async def retries_later(key: str, charge: bool, ctx: JobContext) -> int:
    CALLS[key] += 1
    if CALLS[key] == 1:
        raise Retry(after=timedelta(milliseconds=50), reason="not yet", charge=charge)
    return ctx.attempt


@app.task(max_attempts=3, retry_backoff=FAST, retry_on=(ConnectionError,))
async def only_connection_errors(key: str, error: str) -> None:
    CALLS[key] += 1
    raise ConnectionError(key) if error == "connection" else KeyError(key)


@app.task(max_attempts=3, retry_backoff=FAST, no_retry_on=(KeyError,))
async def never_key_errors(key: str) -> None:
    CALLS[key] += 1
    raise KeyError(key)


@app.task(timeout=timedelta(milliseconds=200), max_attempts=1)
async def async_hang(key: str) -> None:
    SEEN[key] = "started"
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        SEEN[key] = "stopped"
        raise


@app.task(timeout=timedelta(milliseconds=200), max_attempts=1)
def sync_hang(key: str) -> None:
    gate(key).wait(timeout=30)  # the test opens the gate at its end


@app.task(queue="slow")
async def wait_forever(key: str, ctx: JobContext) -> None:
    SEEN[key] = "started"
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        SEEN[key] = "cancelled" if ctx.is_cancelled else "cancelled-without-flag"
        raise


@app.task(queue="slow")
async def wait_for_gate(key: str) -> str:
    SEEN[key] = "started"
    await asyncio.to_thread(gate(key).wait, 30)
    SEEN[key] = "finished"
    return "done"


@app.task(queue="ordered")
async def record(key: str, n: int) -> None:
    ORDER[key].append(n)


@app.task
async def measured(key: str) -> None:
    with LOCK:
        CONCURRENT[key] += 1
        PEAK[key] = max(PEAK[key], CONCURRENT[key])
    await asyncio.sleep(0.02)
    with LOCK:
        CONCURRENT[key] -= 1


@app.task
async def reports(ctx: JobContext) -> str:
    await ctx.set_progress({"phase": "half", "percent": 50})
    await ctx.log("first line", "second line")
    return "reported"


@app.task
def reports_sync(ctx: JobContext) -> str:
    ctx.set_progress_sync({"phase": "sync"})
    ctx.log_sync("from a thread")
    return "reported"


@app.task(queue="cron", cron="* * * * * *")
async def every_second(ctx: JobContext) -> None:
    CALLS[f"cron:{ctx.job.idempotency_key}"] += 1
