"""A PostgreSQL restart mid-run (``pg_ctl restart -m immediate``) on a server of this test's
own: calls fail with ``BackendUnavailable`` while it is down, then the pool and the listener
reconnect by themselves."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from tests.services import PostgresServer

from conveyor.backend import ClaimRequest, Completion
from conveyor.backends.postgres import PostgresBackend
from conveyor.errors import BackendUnavailable
from conveyor.jobs import NewJob, WorkerId

pytestmark = pytest.mark.postgres


async def _until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_backend_recovers_after_restart(own_postgres: PostgresServer) -> None:
    backend = PostgresBackend(own_postgres.url, pool_min=2, pool_max=4)
    await backend.open()
    claim = ClaimRequest(worker=WorkerId("w"), queues=["default"], limit=10)
    try:
        [before] = await backend.enqueue([NewJob(kind="k")])
        assert backend.listener.connections == 0  # it listens from its first wait on
        assert await backend.wait_for_work(["default"], timedelta(0)) is False
        assert backend.listener.connections == 1

        own_postgres.stop("immediate")
        with pytest.raises(BackendUnavailable):
            await backend.enqueue([NewJob(kind="k")])
        assert await backend.wait_for_work(["default"], timedelta(milliseconds=50)) is False
        own_postgres.start()

        async def works() -> bool:
            try:
                await backend.get(before.job.id)
            except BackendUnavailable:
                return False
            return True

        deadline = time.monotonic() + 30
        while not await works():
            assert time.monotonic() < deadline, "the pool did not reconnect"
            await asyncio.sleep(0.1)

        # Every later call works: the dead pooled connections were discarded.
        for _ in range(10):
            assert (await backend.get(before.job.id)) is not None
        [claimed] = await backend.claim(claim)
        assert await backend.complete([Completion(claimed.lease)]) == []

        # The listener re-LISTENed on a new connection and wakes waiters again.
        await _until(backend.listener.connected.is_set)
        assert backend.listener.connections >= 2
        waiter = asyncio.create_task(backend.wait_for_work(["default"], timedelta(seconds=10)))
        await asyncio.sleep(0)
        await backend.enqueue([NewJob(kind="k")])
        assert await asyncio.wait_for(waiter, 15) is True
    finally:
        await backend.close()
