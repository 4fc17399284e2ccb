"""Several worker processes on ONE SQLite file while two producer processes enqueue into it:
no job is claimed twice (no two executions of one job, let alone overlapping ones), none is
lost, and nobody hits "database is locked"."""

from __future__ import annotations

import signal
import sys

import pytest
from tests.e2e import ledger
from tests.e2e.conftest import Harness
from tests.e2e.scenarios import check_outcome, wait_all_completed

pytestmark = [pytest.mark.e2e, pytest.mark.sqlite, pytest.mark.timeout(180)]

WORKERS = 3
PRODUCERS = 2
PER_PRODUCER = 1500


async def test_many_processes_on_one_sqlite_file(harness: Harness, sqlite_url: str) -> None:
    group = harness.processes(sqlite_url)
    # Started together: the migrations must be safe when several processes open the file.
    workers = [group.worker(concurrency=8) for _ in range(WORKERS)]
    producers = [
        group.spawn(
            [
                sys.executable,
                "-m",
                "tests.e2e.producer",
                "--count",
                str(PER_PRODUCER),
                "--batch",
                "20",
                "--prefix",
                f"p{n}",
                "--sleep-ms",
                "2",
                "--pause",
                "0.005",
            ],
            name="producer",
        )
        for n in range(PRODUCERS)
    ]
    for producer in producers:
        assert await producer.wait_exit(90) == 0, harness.logs()

    backend = await harness.backend(sqlite_url)
    total = PRODUCERS * PER_PRODUCER
    await wait_all_completed(harness, backend, total, timeout=90)
    await check_outcome(harness, backend, total, max_duplicates=0)
    assert len(ledger.pids(harness.ledger_path)) == WORKERS, "every worker took a share"

    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert await worker.wait_exit(30) == 0, harness.logs()
    assert "database is locked" not in harness.logs()
