"""``conveyor worker`` / ``conveyor migrate`` as real processes on SQLite: one-line errors,
SIGTERM stops with exit code 0 and nothing left running, ``--processes 2`` supervises."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import Conveyor, JobStatus

pytestmark = pytest.mark.sqlite
ROOT = Path(__file__).resolve().parents[2]
APP = "examples.tasks:app"


def conveyor(*args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if url:
        env["CONVEYOR_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def start(*args: str, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONVEYOR_DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        cwd=ROOT,
        text=True,
        stderr=subprocess.PIPE,
    )


def wait_all(app: Conveyor, ids: list[str], status: JobStatus, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(app.get_job(i).status is not status for i in ids):
        assert time.monotonic() < deadline, [app.get_job(i).status for i in ids]
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "--app", "no_such_module:app"], "cannot import module"),
        (["worker", "--app", "examples.tasks:nope"], "has no attribute"),
        (["worker", "--app", APP, "--database-url", "mysql://x"], "unknown database URL scheme"),
        (["migrate", "--database-url", "nosuch://x"], "unknown database URL scheme"),
    ],
)
def test_one_line_errors(args: list[str], message: str) -> None:
    result = conveyor(*args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_migrate(sqlite_url: str) -> None:
    result = conveyor("migrate", "--database-url", sqlite_url)
    assert result.returncode == 0, result.stderr
    assert "schema at version" in result.stdout


@pytest.mark.parametrize("processes", ["1", "2"])
def test_worker_runs_jobs_and_stops_on_sigterm(sqlite_url: str, processes: str) -> None:
    from examples import tasks

    tasks.app.use_database_url(sqlite_url)
    try:
        ids = [j.id for j in tasks.noop.enqueue_many([{}] * 20)]
        sleeper = tasks.sleep.enqueue(seconds=60).id
        worker = start(
            "worker", "--app", APP, "--processes", processes, "--grace", "1", url=sqlite_url
        )
        try:
            wait_all(tasks.app, ids, JobStatus.COMPLETED)
            wait_all(tasks.app, [sleeper], JobStatus.RUNNING)
            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, err
        back = tasks.app.get_job(sleeper)
        assert back.status is JobStatus.QUEUED and back.attempts == 0
    finally:
        tasks.app.close()
        tasks.app.use_database_url("sqlite:///conveyor.db")


@pytest.mark.parametrize("processes", [1, 2])
def test_worker_serves_metrics(sqlite_url: str, processes: int) -> None:
    import httpx
    from examples import tasks
    from prometheus_client.parser import text_string_to_metric_families
    from tests.services import free_port

    port = free_port() if processes == 1 else _two_free_ports()
    tasks.app.use_database_url(sqlite_url)
    worker = start(
        "worker",
        "--app",
        APP,
        "--processes",
        str(processes),
        "--metrics-port",
        str(port),
        url=sqlite_url,
    )
    try:
        ids = [j.id for j in tasks.noop.enqueue_many([{}] * 10)]
        wait_all(tasks.app, ids, JobStatus.COMPLETED)
        processed = 0.0
        deadline = time.monotonic() + 20
        while processed < 10:  # the children's counters, summed, reach every job
            assert time.monotonic() < deadline, processed
            processed = 0.0
            for slot in range(processes):
                try:
                    text = httpx.get(f"http://127.0.0.1:{port + slot}/metrics", timeout=2).text
                except httpx.TransportError:
                    continue
                for family in text_string_to_metric_families(text):
                    if family.name == "conveyor_jobs_processed":
                        processed += sum(
                            s.value for s in family.samples if s.name.endswith("_total")
                        )
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        finally:
            if worker.poll() is None:
                worker.kill()
        tasks.app.close()
        tasks.app.use_database_url("sqlite:///conveyor.db")
    assert worker.returncode == 0


def _two_free_ports() -> int:
    """A port P with P+1 free too (the second child's)."""
    import socket

    from tests.services import free_port

    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two adjacent free ports")
