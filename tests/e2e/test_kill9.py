"""``kill -9`` of worker processes in the middle of 5,000 jobs, on every durable engine.

Scored against the ledger (``tests/e2e/ledger.py``) the way Jepsen's total-queue checker
does: lost = 0 and unexpected = 0 always; duplicates only among the jobs that were in flight
(``running``, leased to the killed process) at the kill, so never more than those, and never
more than concurrency x killed processes (RELIABILITY.md's bar). A short
lease (2 s) makes the rescue of the killed worker's jobs happen within seconds.
"""

from __future__ import annotations

import os
import signal

import pytest
from tests.e2e import ledger
from tests.e2e.conftest import FAST_LEASE_ENV, Harness, all_jobs
from tests.e2e.producer import enqueue_acknowledged
from tests.e2e.scenarios import check_outcome, wait_all_completed
from tests.e2e.workers import alive, wait_until, worker_children

from conveyor.backend import Backend
from conveyor.jobs import JobStatus

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

JOBS = 5000
KILL_AFTER = 1500  # executions in the ledger before the kill
SLEEP_MS = 5.0  # every job is in flight a little while, so a kill always catches some
ENGINES = ("sqlite", "postgres", "redis")


@pytest.fixture(params=[pytest.param(e, marks=getattr(pytest.mark, e)) for e in ENGINES])
def engine_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


async def enqueue_all(harness: Harness, url: str, n: int = JOBS) -> Backend:
    backend = await harness.backend(url)
    markers = [f"m{i}" for i in range(n)]
    await enqueue_acknowledged(backend, harness.ledger_path, markers, sleep_ms=SLEEP_MS, batch=1000)
    return backend


async def in_flight_on(backend: Backend, pid: int) -> set[str]:
    """Ids of the jobs leased to process ``pid`` (worker ids are ``host:pid:token``). Read
    right after the kill, before any lease can expire, so it is exactly what was in flight."""
    running = await all_jobs(backend, frozenset({JobStatus.RUNNING}))
    return {str(j.id) for j in running if j.lease_owner and f":{pid}:" in j.lease_owner}


def check_duplicates_were_in_flight(
    harness: Harness, in_flight: set[str], concurrency: int, killed: int = 1
) -> None:
    """Duplicates only among the jobs in flight at the kill, and (RELIABILITY.md's bar) no
    more than concurrency x killed processes: a worker never holds more leases than its
    concurrency, a completion waiting in its batch buffer included."""
    verdict = ledger.score(harness.ledger_path)
    stray = verdict.duplicated_jobs - in_flight
    assert not stray, f"{len(stray)} jobs ran twice that were not in flight at the kill"
    assert verdict.duplicated <= len(in_flight)
    assert len(in_flight) <= concurrency * killed, (
        f"{len(in_flight)} jobs leased to the killed process(es), concurrency {concurrency}"
    )
    assert verdict.duplicated <= concurrency * killed, verdict.summary()


async def test_kill9_single_process_worker(harness: Harness, engine_url: str) -> None:
    concurrency = 16
    backend = await enqueue_all(harness, engine_url)
    group = harness.processes(engine_url, FAST_LEASE_ENV)
    first = group.worker(concurrency=concurrency)

    await wait_until(
        lambda: ledger.execution_count(harness.ledger_path) >= KILL_AFTER,
        60, f"{KILL_AFTER} executions", on_timeout=harness.logs, watch=[first],
    )  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)
    assert await first.wait_exit(10) == -signal.SIGKILL
    in_flight = await in_flight_on(backend, first.pid)
    print(f"killed pid {first.pid} with {len(in_flight)} jobs running (concurrency {concurrency})")

    second = group.worker(concurrency=concurrency)
    await wait_all_completed(harness, backend, JOBS, timeout=90)
    await check_outcome(harness, backend, JOBS, max_duplicates=len(in_flight))
    check_duplicates_were_in_flight(harness, in_flight, concurrency)

    second.signal(signal.SIGTERM)
    assert await second.wait_exit(30) == 0, harness.logs()


async def test_kill9_child_of_supervisor_is_restarted(harness: Harness, engine_url: str) -> None:
    concurrency = 8
    backend = await enqueue_all(harness, engine_url)
    group = harness.processes(engine_url, FAST_LEASE_ENV)
    supervisor = group.worker(concurrency=concurrency, processes=2)

    await wait_until(
        lambda: ledger.execution_count(harness.ledger_path) >= KILL_AFTER,
        60, f"{KILL_AFTER} executions", on_timeout=harness.logs, watch=[supervisor],
    )  # fmt: skip
    before = set(worker_children(supervisor.pid))
    working = sorted(before & ledger.pids(harness.ledger_path))
    assert working, f"no child of {supervisor.pid} in the ledger; children {before}"
    victim = working[0]
    os.kill(victim, signal.SIGKILL)
    await wait_until(lambda: not alive(victim), 10, f"pid {victim} to die")
    in_flight = await in_flight_on(backend, victim)
    print(f"killed child {victim} with {len(in_flight)} jobs running (concurrency {concurrency})")

    def restarted() -> bool:
        now = set(worker_children(supervisor.pid))
        return len(now - before) >= 1 and len(now) >= 2

    await wait_until(
        restarted, 30, "the supervisor to restart the killed child",
        on_timeout=harness.logs, watch=[supervisor],
    )  # fmt: skip

    await wait_all_completed(harness, backend, JOBS, timeout=90)
    await check_outcome(harness, backend, JOBS, max_duplicates=len(in_flight))
    check_duplicates_were_in_flight(harness, in_flight, concurrency)

    children = worker_children(supervisor.pid)
    supervisor.signal(signal.SIGTERM)
    assert await supervisor.wait_exit(30) == 0, harness.logs()
    await wait_until(
        lambda: not any(alive(c) for c in children), 10, "the children to exit with it"
    )
