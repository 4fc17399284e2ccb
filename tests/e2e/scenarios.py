"""Shared steps of the fault tests: enqueue and wait, the Jepsen-style verdict, and the
"restart the server in the middle of a run" scenario used for PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from tests.e2e import ledger
from tests.e2e.conftest import Harness, all_jobs, counts
from tests.e2e.producer import enqueue_acknowledged
from tests.e2e.workers import wait_until

from conveyor.backend import Backend
from conveyor.jobs import JobStatus


async def wait_all_completed(harness: Harness, backend: Backend, n: int, timeout: float) -> None:
    async def done() -> bool:
        return (await counts(backend)).get(JobStatus.COMPLETED, 0) >= n

    await wait_until(
        done, timeout, f"{n} completed jobs", interval=0.2,
        on_timeout=lambda: f"{ledger.score(harness.ledger_path).summary()}\n{harness.logs()}",
    )  # fmt: skip


async def check_outcome(harness: Harness, backend: Backend, n: int, max_duplicates: int) -> None:
    """lost = 0, unexpected = 0, no job ran twice at once, duplicates bounded, and the
    backend agrees: exactly the acknowledged jobs exist, all completed."""
    verdict = ledger.score(harness.ledger_path)
    print(verdict.summary())
    assert verdict.acknowledged == n
    assert verdict.lost == (), f"lost jobs: {verdict.lost[:20]}"
    assert verdict.unexpected == (), f"unexpected executions: {verdict.unexpected[:20]}"
    assert verdict.overlapping == (), f"ran concurrently twice: {verdict.overlapping[:20]}"
    assert verdict.duplicated <= max_duplicates, verdict.summary()
    jobs = await all_jobs(backend)
    assert len(jobs) == n
    not_done = [j for j in jobs if j.status is not JobStatus.COMPLETED]
    assert not_done == [], f"{len(not_done)} jobs not completed, e.g. {not_done[:3]}"
    acked_ids = set(ledger.enqueued(harness.ledger_path).values())
    assert {str(j.id) for j in jobs} == acked_ids


async def restart_mid_run(
    harness: Harness,
    url: str,
    restart: Callable[[], None],
    *,
    before: int = 3000,
    during: int = 2000,
    workers: int = 2,
    concurrency: int = 16,
    lease_seconds: float = 5.0,
) -> None:
    """Enqueue ``before`` jobs, start ``workers`` worker processes, and while they run (and a
    producer keeps enqueueing ``during`` more, retrying through the outage) call ``restart``
    once. The workers must reconnect by themselves and finish everything."""
    backend = await harness.backend(url)
    await enqueue_acknowledged(
        backend, harness.ledger_path, [f"b{i}" for i in range(before)], sleep_ms=5, batch=1000
    )
    group = harness.processes(url, {"CONVEYOR_LEASE_SECONDS": str(lease_seconds)})
    procs = [group.worker(concurrency=concurrency) for _ in range(workers)]

    await wait_until(
        lambda: ledger.execution_count(harness.ledger_path) >= before // 3,
        60, "a third of the first jobs to run", on_timeout=harness.logs,
    )  # fmt: skip
    producer = asyncio.create_task(
        enqueue_acknowledged(
            backend, harness.ledger_path, [f"d{i}" for i in range(during)],
            sleep_ms=5, batch=50, pause=0.02, retry_for=60,
        )
    )  # fmt: skip
    await asyncio.sleep(0.2)  # the producer is mid-stream when the server goes away
    executed_at_restart = ledger.execution_count(harness.ledger_path)
    assert executed_at_restart < before, "the restart came too late to hit a running queue"
    await asyncio.to_thread(restart)
    print(f"restarted the server after {executed_at_restart} executions")
    retried = await asyncio.wait_for(producer, 90)
    print(f"producer retried {retried} batches across the restart")

    await wait_all_completed(harness, backend, before + during, timeout=90)
    for proc in procs:
        assert proc.proc.poll() is None, f"worker {proc.pid} died:\n{harness.logs()}"
    # Nobody was killed: only jobs in flight at the restart may run twice.
    await check_outcome(harness, backend, before + during, workers * concurrency)

    for proc in procs:
        proc.signal(signal.SIGTERM)
    for proc in procs:
        assert await proc.wait_exit(30) == 0, harness.logs()
