"""Durability on Redis: the configuration check in ``open`` (loud warnings, ``strict``
refusal, the INFO fallback when CONFIG is disabled), and a real crash: kill -9 of a server
with appendfsync always loses no acknowledged job, and the same backend handle works again
once the server is back, without being reopened."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import TypeVar

import pytest
import redis.asyncio as aioredis
from tests.backends.conftest import claim_request, new_job
from tests.services import RedisServer, ServiceMissing, _wait_port, free_port

from conveyor.backend import Completion, JobFilter, ListRequest
from conveyor.backends.redis import RedisBackend
from conveyor.clock import FrozenClock
from conveyor.errors import BackendUnavailable, ConfigurationError
from conveyor.jobs import JobStatus

pytestmark = pytest.mark.redis
T = TypeVar("T")


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer(appendonly=True, appendfsync="always").start()
    except ServiceMissing as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def no_config_server() -> Iterator[str]:
    """A redis-server with CONFIG renamed away, as managed services do."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="conveyor-redis-noconfig-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
         "--appendonly", "no", "--maxmemory-policy", "allkeys-lru",
         "--rename-command", "CONFIG", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


async def eventually(call: Callable[[], Awaitable[T]], seconds: float = 20) -> T:
    """The first calls after a restart may find the server still loading its AOF."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await call()
        except BackendUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_non_durable_server_warns_loudly(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The session server runs with appendonly no and save "": nothing survives a restart.
    backend = RedisBackend(redis_url)
    with caplog.at_level(logging.WARNING, logger="conveyor.backends.redis"):
        await backend.open()
    await backend.close()
    assert any("LOSE ACKNOWLEDGED JOBS" in r.message and "appendonly" in r.message
               for r in caplog.records)  # fmt: skip
    assert backend.durability is not None and not backend.durability.appendonly


async def test_strict_refuses_a_non_durable_server(redis_url: str) -> None:
    for backend in (RedisBackend(redis_url, strict=True), RedisBackend(f"{redis_url}&strict=1")):
        with pytest.raises(ConfigurationError, match="appendonly"):
            await backend.open()
        await backend.close()


async def test_strict_accepts_aof_always_and_refuses_eviction(
    aof_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{aof_server.url}?prefix=strict"
    with caplog.at_level(logging.WARNING, logger="conveyor.backends.redis"):
        backend = RedisBackend(url, strict=True)
        await backend.open()
        await backend.close()
    assert not caplog.records
    raw = aioredis.Redis.from_url(aof_server.url)
    try:
        await raw.config_set("maxmemory-policy", "allkeys-lru")
        backend = RedisBackend(url, strict=True)
        with pytest.raises(ConfigurationError, match="maxmemory-policy"):
            await backend.open()
        await backend.close()
    finally:
        await raw.aclose()


async def test_config_disabled_falls_back_to_info(no_config_server: str) -> None:
    backend = RedisBackend(f"{no_config_server}?prefix=x", strict=True)
    with pytest.raises(ConfigurationError, match="maxmemory-policy is 'allkeys-lru'"):
        await backend.open()
    await backend.close()
    assert backend.durability is not None and backend.durability.source == "info"
    assert not backend.durability.appendonly


async def test_kill_9_loses_no_acknowledged_job(aof_server: RedisServer) -> None:
    clock = FrozenClock()
    backend = RedisBackend(f"{aof_server.url}?prefix=crash", clock=clock, strict=True)
    await backend.open()
    try:
        ids = set()
        for start in range(0, 1000, 100):
            batch = [new_job(payload={"n": n}) for n in range(start, start + 100)]
            ids |= {e.job.id for e in await backend.enqueue(batch)}
        claimed = await backend.claim(claim_request(limit=100))
        assert not await backend.complete([Completion(c.lease) for c in claimed[:50]])

        aof_server.kill()
        with pytest.raises(BackendUnavailable):
            await backend.enqueue([new_job()])
        aof_server.start()

        stats = await eventually(backend.stats)
        assert stats[0].counts[JobStatus.COMPLETED] == 50
        assert stats[0].counts[JobStatus.RUNNING] == 50
        assert stats[0].counts[JobStatus.QUEUED] == 900
        found: set[str] = set()
        cursor = None
        while True:
            page = await backend.list_jobs(ListRequest(JobFilter(), limit=1000, cursor=cursor))
            found |= {j.id for j in page.jobs}
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert found == ids

        # The same handle goes on working: rescue the orphaned leases, run everything.
        clock.advance(timedelta(minutes=5))
        assert len((await backend.rescue()).requeued) == 50
        done = 50
        while batch_claimed := await backend.claim(claim_request(limit=64)):
            assert not await backend.complete([Completion(c.lease) for c in batch_claimed])
            done += len(batch_claimed)
        assert done == 1000
    finally:
        await backend.close()
