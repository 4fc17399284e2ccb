"""Graceful shutdown of a real ``conveyor worker`` process on every durable engine.

SIGTERM while jobs run: the worker stops claiming, lets running jobs finish within
``--grace``, releases the rest back to ``queued`` without charging the attempt, and exits 0.
A second signal releases at once, still exit 0. Nothing is ever left ``running``.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
from tests.e2e import ledger
from tests.e2e.conftest import Harness, all_jobs, counts
from tests.e2e.producer import enqueue_acknowledged
from tests.e2e.workers import WorkerProcess, wait_until

from conveyor.backend import Backend
from conveyor.jobs import JobStatus

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ENGINES = ("sqlite", "postgres", "redis")
CONCURRENCY = 4


@pytest.fixture(params=[pytest.param(e, marks=getattr(pytest.mark, e)) for e in ENGINES])
def engine_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


async def start_busy_worker(
    harness: Harness, url: str, sleeps_ms: list[float], grace: float
) -> tuple[Backend, WorkerProcess]:
    """Enqueue one job per sleep, start a worker, return once all its slots are busy."""
    backend = await harness.backend(url)
    for i, sleep_ms in enumerate(sleeps_ms):
        await enqueue_acknowledged(backend, harness.ledger_path, [f"s{i}"], sleep_ms=sleep_ms)
    worker = harness.processes(url).worker(concurrency=CONCURRENCY, grace=grace)

    async def busy() -> bool:
        return (await counts(backend)).get(JobStatus.RUNNING, 0) >= CONCURRENCY

    await wait_until(busy, 30, "every slot busy", on_timeout=harness.logs, watch=[worker])
    return backend, worker


async def check_nothing_running(harness: Harness, backend: Backend) -> None:
    """Completed jobs ran once; every other job is back in ``queued`` with no attempt
    charged; nothing is ``running``."""
    jobs = await all_jobs(backend)
    by_status = {s: [j for j in jobs if j.status is s] for s in JobStatus}
    assert by_status[JobStatus.RUNNING] == []
    assert {j.status for j in jobs} <= {JobStatus.COMPLETED, JobStatus.QUEUED}
    uncharged = [j for j in by_status[JobStatus.QUEUED] if j.attempts != 0 or j.lease_owner]
    assert uncharged == [], f"released jobs kept an attempt or a lease: {uncharged[:3]}"
    verdict = ledger.score(harness.ledger_path)
    assert verdict.duplicated == 0 and verdict.unexpected == ()
    executed = {e.job_id for e in ledger.executions(harness.ledger_path)}
    assert executed == {str(j.id) for j in by_status[JobStatus.COMPLETED]}


async def test_sigterm_lets_running_jobs_finish_then_exits_0(
    harness: Harness, engine_url: str
) -> None:
    rng = random.Random(7)
    sleeps = [rng.uniform(500, 2000) for _ in range(40)]
    grace = 10.0
    backend, worker = await start_busy_worker(harness, engine_url, sleeps, grace)

    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = await worker.wait_exit(grace + 5)
    elapsed = time.monotonic() - started
    assert code == 0, harness.logs()
    # The running jobs sleep at most 2 s: the worker must not use up the grace period.
    assert elapsed < grace, f"took {elapsed:.1f}s"

    await check_nothing_running(harness, backend)
    state = await counts(backend)
    assert state[JobStatus.COMPLETED] >= CONCURRENCY  # the in-flight ones finished
    assert state[JobStatus.QUEUED] >= len(sleeps) - 2 * CONCURRENCY  # it stopped claiming


async def test_sigterm_releases_jobs_still_running_after_grace(
    harness: Harness, engine_url: str
) -> None:
    grace = 1.0
    backend, worker = await start_busy_worker(harness, engine_url, [60_000.0] * 6, grace)

    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = await worker.wait_exit(grace + 10)
    elapsed = time.monotonic() - started
    assert code == 0, harness.logs()
    assert grace <= elapsed < grace + 5, f"exit after {elapsed:.1f}s with grace {grace}s"

    await check_nothing_running(harness, backend)
    assert (await counts(backend))[JobStatus.QUEUED] == 6
    assert ledger.execution_count(harness.ledger_path) == 0


async def test_second_signal_releases_at_once(harness: Harness, engine_url: str) -> None:
    grace = 60.0
    backend, worker = await start_busy_worker(harness, engine_url, [60_000.0] * 6, grace)

    worker.signal(signal.SIGTERM)
    assert await worker.wait_exit(0.5) is None, "exited before the grace period on one signal"
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = await worker.wait_exit(10)
    elapsed = time.monotonic() - started
    assert code == 0, harness.logs()
    assert elapsed < 5, f"second signal took {elapsed:.1f}s"

    await check_nothing_running(harness, backend)
    assert (await counts(backend))[JobStatus.QUEUED] == 6
