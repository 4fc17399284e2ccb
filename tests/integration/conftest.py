"""Fixtures for worker + real backend tests: every test runs once per engine (memory, sqlite,
postgres, redis), on a fresh store, with the example app of ``worker_tasks`` pointed at it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from conveyor import Conveyor
from conveyor.testing import TEST_CONFIG
from conveyor.worker import WorkerConfig

ENGINES = ("memory", "sqlite", "postgres", "redis")

FAST_CONFIG = replace(
    TEST_CONFIG,
    queues=("default", "slow", "ordered"),
    lease=timedelta(seconds=1.5),
    poll_interval=timedelta(milliseconds=50),
    cron=False,
    retention=None,
)


@pytest.fixture(params=[pytest.param(n, marks=getattr(pytest.mark, n)) for n in ENGINES])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_url(engine: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{engine}_url"))


@pytest.fixture
async def app(engine_url: str) -> AsyncIterator[Conveyor]:
    from tests.integration import worker_tasks

    application = worker_tasks.app
    await application.aclose()
    application.use_database_url(engine_url)
    try:
        yield application
    finally:
        await application.aclose()
        application.use_database_url("memory://")


@pytest.fixture
def config() -> WorkerConfig:
    return replace(FAST_CONFIG, worker_id=f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex
