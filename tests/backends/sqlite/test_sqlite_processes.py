"""Several OS processes on one SQLite file: concurrent migration, claims never duplicated,
idempotency keys held across processes, and wait_for_work woken by another process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from conveyor.backends.sqlite import SQLiteBackend
from conveyor.backends.sqlite.migrations import latest_version
from conveyor.jobs import JobId, JobStatus, NewJob

pytestmark = pytest.mark.sqlite
ACTORS = Path(__file__).with_name("sqlite_actors.py")


def start_all(commands: list[list[str]], go: Path) -> list[subprocess.Popen[str]]:
    """Start the actors, let them connect, then release them at once with the go file."""
    env = {**os.environ, "CONVEYOR_TEST_GO": str(go)}
    procs = [
        subprocess.Popen([sys.executable, str(ACTORS), *cmd], env=env, text=True)
        for cmd in commands
    ]
    deadline = time.monotonic() + 60
    while len(list(go.parent.glob(f"{go.name}.ready.*"))) < len(procs):
        assert time.monotonic() < deadline, "actors did not get ready"
        assert all(proc.poll() is None for proc in procs), "an actor died"
        time.sleep(0.01)
    go.touch()
    return procs


def wait_all(procs: list[subprocess.Popen[str]]) -> None:
    codes = [proc.wait(timeout=120) for proc in procs]
    assert codes == [0] * len(procs)


def test_processes_migrate_one_fresh_file_at_once(sqlite_url: str, tmp_path: Path) -> None:
    wait_all(start_all([["open", sqlite_url] for _ in range(4)], tmp_path / "go"))
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM conveyor_migrations")]
    assert versions == list(range(1, latest_version() + 1))


async def test_claims_across_processes_are_never_duplicated(
    sqlite_url: str, tmp_path: Path
) -> None:
    backend = SQLiteBackend(sqlite_url)
    await backend.open()
    total = 3000
    enqueued = await backend.enqueue([NewJob(kind="k", payload={"i": i}) for i in range(total)])
    await backend.close()
    outs = [tmp_path / f"claimed-{n}.txt" for n in range(3)]
    wait_all(start_all([["claim", sqlite_url, str(out), "16"] for out in outs], tmp_path / "go"))
    per_process = [out.read_text().split() for out in outs]
    counts = Counter(job_id for ids in per_process for job_id in ids)
    assert max(counts.values()) == 1, "a job was claimed twice"
    assert set(counts) == {e.job.id for e in enqueued}
    assert sum(bool(ids) for ids in per_process) >= 2, "only one process claimed: no race"


async def test_idempotency_key_holds_across_processes(sqlite_url: str, tmp_path: Path) -> None:
    backend = SQLiteBackend(sqlite_url)
    await backend.open()  # migrate first, so the actors race on the insert only
    outs = [tmp_path / f"enq-{n}.txt" for n in range(4)]
    wait_all(
        start_all(
            [["enqueue-key", sqlite_url, "tick-1", str(out)] for out in outs], tmp_path / "go"
        )
    )
    answers = [out.read_text().split() for out in outs]
    assert len({job_id for job_id, _ in answers}) == 1
    assert sorted(created for _, created in answers) == ["0", "0", "0", "1"]
    page_ids = {job_id for job_id, _ in answers}
    assert (await backend.get(next(iter(page_ids)))) is not None  # type: ignore[arg-type]
    await backend.close()


async def test_wait_for_work_wakes_on_another_processs_enqueue(sqlite_url: str) -> None:
    backend = SQLiteBackend(sqlite_url)
    await backend.open()
    child = subprocess.Popen(
        [sys.executable, str(ACTORS), "enqueue-after", sqlite_url, "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        woken = await backend.wait_for_work(["wake"], timedelta(seconds=20))
        woke_at = time.time()
        assert child.stdout is not None
        enqueued_at = float(child.stdout.readline())
    finally:
        assert child.wait(timeout=20) == 0
        await backend.close()
    assert woken is True
    latency = woke_at - enqueued_at
    # Polling data_version every 5 ms: a few ms typically; generous for a loaded CI box.
    assert latency < 0.5, f"woke {latency * 1000:.1f} ms after the other process's commit"


async def test_wait_for_work_in_process_between_handles(sqlite_url: str) -> None:
    import asyncio

    waiter_side = SQLiteBackend(sqlite_url)
    producer = SQLiteBackend(sqlite_url)
    await waiter_side.open()
    await producer.open()
    try:
        waiter = asyncio.create_task(waiter_side.wait_for_work(["q"], timedelta(seconds=10)))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await producer.enqueue([NewJob(kind="k", queue="q")])
        assert await waiter is True
        assert time.monotonic() - started < 0.5
    finally:
        await waiter_side.close()
        await producer.close()


async def test_commits_survive_kill_9_of_the_writing_process(sqlite_url: str) -> None:
    child = subprocess.Popen(
        [sys.executable, str(ACTORS), "enqueue-and-hang", sqlite_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first, second = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    backend = SQLiteBackend(sqlite_url)
    await backend.open()
    try:
        claimed = await backend.get(JobId(first))
        waiting = await backend.get(JobId(second))
        assert claimed is not None and claimed.status is JobStatus.RUNNING
        assert claimed.lease_owner == "doomed"
        assert waiting is not None and waiting.status is JobStatus.QUEUED
    finally:
        await backend.close()
