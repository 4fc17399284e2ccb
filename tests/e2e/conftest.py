"""Fixtures of the fault tests: a fresh ledger per test, a ``Harness`` that owns the worker
processes (killed by PID in teardown, whatever happened) and opens the backend to inspect
jobs. The engines' URLs come from ``tests/conftest.py`` (session servers) or from the test
itself (its own server, for restart tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.e2e import ledger
from tests.e2e.ledger_tasks import QUEUE
from tests.e2e.workers import ProcessGroup, base_env

from conveyor.backend import Backend, JobFilter, ListRequest
from conveyor.backends import open_backend
from conveyor.jobs import Job, JobStatus

# A short lease so that the jobs of a killed worker are rescued within seconds.
FAST_LEASE_ENV = {"CONVEYOR_LEASE_SECONDS": "2"}


@dataclass
class Harness:
    tmp: Path
    ledger_path: Path
    groups: list[ProcessGroup] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)

    def processes(self, database_url: str, env: Mapping[str, str] | None = None) -> ProcessGroup:
        group = ProcessGroup(self.tmp, base_env(database_url, self.ledger_path, env))
        self.groups.append(group)
        return group

    async def backend(self, database_url: str) -> Backend:
        backend = open_backend(database_url)
        await backend.open()
        self.backends.append(backend)
        return backend

    def logs(self) -> str:
        return "\n".join(g.logs() for g in self.groups)

    def close_processes(self) -> None:
        for group in self.groups:
            group.close()


async def counts(backend: Backend) -> dict[JobStatus, int]:
    for stats in await backend.stats():
        if stats.queue == QUEUE:
            return dict(stats.counts)
    return {s: 0 for s in JobStatus}


async def all_jobs(backend: Backend, statuses: frozenset[JobStatus] = frozenset()) -> list[Job]:
    jobs: list[Job] = []
    cursor: str | None = None
    while True:
        page = await backend.list_jobs(
            ListRequest(
                filter=JobFilter(queues=frozenset({QUEUE}), statuses=statuses),
                limit=1000,
                cursor=cursor,
            )
        )
        jobs.extend(page.jobs)
        if page.next_cursor is None:
            return jobs
        cursor = page.next_cursor


@pytest.fixture
def harness_sync(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp=tmp_path, ledger_path=ledger.create(tmp_path / "ledger.db"))
    try:
        yield h
    finally:
        h.close_processes()


@pytest.fixture
async def harness(harness_sync: Harness) -> AsyncIterator[Harness]:
    try:
        yield harness_sync
    finally:
        harness_sync.close_processes()
        for backend in harness_sync.backends:
            with contextlib.suppress(Exception):
                await backend.close()
