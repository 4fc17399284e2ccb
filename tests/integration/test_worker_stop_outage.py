"""Stopping a worker while its backend is down (a PostgreSQL server of this test's own,
stopped for real): a graceful stop keeps trying to hand its jobs back, and a second stop
request gives up at once, leaving them to be rescued when their leases expire."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from tests.integration import worker_tasks as t
from tests.integration.conftest import FAST_CONFIG
from tests.services import PostgresServer

from conveyor import Conveyor, JobStatus
from conveyor.backends.postgres import PostgresBackend
from conveyor.worker import Worker

pytestmark = pytest.mark.postgres


@pytest.fixture
async def app(own_postgres: PostgresServer) -> AsyncIterator[Conveyor]:
    application = t.app
    await application.aclose()
    application.use_database_url(own_postgres.url)
    try:
        yield application
    finally:
        await application.aclose()
        application.use_database_url("memory://")


async def _until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_second_stop_request_gives_up_on_a_backend_that_is_down(
    app: Conveyor, own_postgres: PostgresServer
) -> None:
    key = uuid.uuid4().hex
    config = replace(FAST_CONFIG, worker_id=f"test-{key[:8]}", lease=timedelta(seconds=30))
    worker = Worker(app, config=replace(config, grace=timedelta(milliseconds=300)))
    run = asyncio.create_task(worker.run())
    job = await t.wait_forever.enqueue_async(key=key)
    await _until(lambda: t.SEEN.get(key) == "started")

    own_postgres.stop("immediate")
    worker.request_stop()
    await asyncio.sleep(2.0)  # past the grace period: the job is stopped, its release fails
    assert not run.done(), "a graceful stop gave up on handing the job back"
    assert t.SEEN[key] == "cancelled"

    asked = time.monotonic()
    worker.request_stop()
    await asyncio.wait_for(run, timeout=20)
    assert time.monotonic() - asked < 5  # each call given up on waits 1 s at most

    own_postgres.start()
    check = PostgresBackend(own_postgres.url)
    await check.open()
    try:
        stored = await check.get(job.id)
    finally:
        await check.close()
    # Not handed back: still running under the stopped worker's lease, which will expire.
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert stored.lease_owner == config.worker_id
