"""Redis engine specifics that the conformance suite cannot see: URL options, the key
layout, counters kept in step with the indexes, exact claim order across priorities,
all-or-nothing chunked enqueue, wake-ups, exception translation and memory per job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis import exceptions as rexc
from tests.backends.conftest import claim_request, new_job
from tests.services import free_port

from conveyor.backend import (
    Capability,
    ClaimedJob,
    ClaimRequest,
    Completion,
    FailRequest,
    JobFilter,
    ListRequest,
    PurgeRequest,
    QueueSettings,
    RequeueRequest,
)
from conveyor.backends import open_backend
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis import store as redis_store
from conveyor.backends.redis.connection import parse_url
from conveyor.clock import FrozenClock
from conveyor.errors import BackendUnavailable, QueueFull
from conveyor.jobs import AttemptError, JobStatus, NewJob, WorkerId

pytestmark = pytest.mark.redis


def prefix_of(url: str) -> str:
    return parse_url(url).prefix


def server_of(url: str) -> str:
    return parse_url(url).connect_url


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(server_of(redis_url), decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def backend(redis_url: str, clock: FrozenClock) -> AsyncIterator[RedisBackend]:
    handle = RedisBackend(redis_url, clock=clock)
    await handle.open()
    try:
        yield handle
    finally:
        await handle.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def test_url_options() -> None:
    options = parse_url("redis://:secret@127.0.0.1:6390/2?prefix=app&strict=1&socket_timeout=5")
    assert options.prefix == "app" and options.strict
    assert options.connect_url == "redis://:secret@127.0.0.1:6390/2?socket_timeout=5"
    assert parse_url("rediss://example:6380/0").prefix == "conveyor"
    assert not parse_url("redis://127.0.0.1/0").strict
    backend = open_backend("redis://:secret@127.0.0.1:6390/2?prefix=app")
    assert isinstance(backend, RedisBackend)
    assert "secret" not in backend.url
    assert backend.capabilities == {
        Capability.NOTIFY,
        Capability.MULTI_PROCESS,
        Capability.MULTI_HOST,
        Capability.HANDOFF,
    }


async def test_unreachable_server_is_backend_unavailable() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BackendUnavailable) as info:
        await backend.open()
    assert isinstance(info.value.__cause__, rexc.ConnectionError)
    await backend.close()


async def test_every_key_lives_under_the_prefix(
    backend: RedisBackend, raw: aioredis.Redis, redis_url: str
) -> None:
    prefix = prefix_of(redis_url)
    [job] = await backend.enqueue([new_job(idempotency_key="k")])
    await backend.append_log(job.job.id, ["hello"])
    await backend.configure_queue(QueueSettings(queue="default", max_depth=10))
    keys = {k async for k in raw.scan_iter(match="*", count=1000)}
    mine = {k for k in keys if k.startswith(f"{prefix}:")}
    assert mine >= {
        f"{prefix}:schema",
        f"{prefix}:job:{job.job.id}",
        f"{prefix}:log:{job.job.id}",
        f"{prefix}:ready:default",
        f"{prefix}:st:queued",
        f"{prefix}:counts",
        f"{prefix}:ikey",
        f"{prefix}:queues",
        f"{prefix}:qs:default",
    }
    assert await raw.get(f"{prefix}:schema") == "1"
    assert (await backend.migration_status()).up_to_date
    # Small jobs stay in Redis's compact hash encoding.
    assert await raw.object("encoding", f"{prefix}:job:{job.job.id}") == "listpack"


async def counters_match_indexes(raw: aioredis.Redis, prefix: str) -> None:
    """The per queue/status counters equal what the indexes hold, and no index entry
    points at a deleted job (nothing dangles after purge)."""
    counts = {k: int(v) for k, v in (await raw.hgetall(f"{prefix}:counts")).items() if int(v)}
    seen: dict[str, int] = {}
    for status in JobStatus:
        for job_id in await raw.zrange(f"{prefix}:st:{status}", 0, -1):
            fields = await raw.hmget(f"{prefix}:job:{job_id}", ["s", "q"])
            assert fields[0] == status, (job_id, fields, status)
            key = f"{status}:{fields[1]}"
            seen[key] = seen.get(key, 0) + 1
    assert counts == seen
    async for key in raw.scan_iter(match=f"{prefix}:*", count=1000):
        kind = key.split(":")[1]
        if kind in ("ready", "sched", "fin", "running"):
            for member in await raw.zrange(key, 0, -1):
                job_id = member.split("|")[-1]
                assert await raw.exists(f"{prefix}:job:{job_id}"), (key, member)


async def test_counters_and_indexes_stay_in_step(
    backend: RedisBackend, raw: aioredis.Redis, redis_url: str, clock: FrozenClock
) -> None:
    jobs = [new_job(queue=q, max_attempts=2) for q in ("a", "b") for _ in range(6)]
    jobs.append(new_job(queue="a", delay=timedelta(minutes=5)))
    jobs.append(new_job(queue="b", delay=timedelta(minutes=5)))
    enqueued = await backend.enqueue(jobs)
    await backend.cancel(enqueued[-1].job.id)  # a waiting job
    claimed = await backend.claim(claim_request(queues=("a", "b"), limit=8))
    await backend.complete([Completion(c.lease) for c in claimed[:3]])
    error = AttemptError(attempt=1, at=clock.now(), type="builtins.ValueError", message="x")
    await backend.fail(FailRequest(claimed[3].lease, error))
    await backend.fail(FailRequest(claimed[4].lease, error, retry_after=timedelta(seconds=1)))
    await backend.release([claimed[5].lease])
    await backend.cancel(claimed[6].job.id)
    clock.advance(timedelta(minutes=1))
    rescued = await backend.rescue()
    assert len(rescued.requeued) + len(rescued.cancelled) == 2
    await backend.requeue(RequeueRequest(JobFilter()))
    await counters_match_indexes(raw, prefix_of(redis_url))
    clock.advance(timedelta(days=40))
    await backend.complete([Completion(c.lease) for c in claimed[:3]])  # lost: no change
    await backend.cancel((await backend.claim(claim_request(queues=("b",))))[0].job.id)
    purged = await backend.purge(PurgeRequest(completed_older_than=timedelta(days=1)))
    assert purged == 3
    await counters_match_indexes(raw, prefix_of(redis_url))
    stats = {s.queue: s for s in await backend.stats()}
    assert stats["a"].counts[JobStatus.COMPLETED] + stats["b"].counts[JobStatus.COMPLETED] == 0


async def test_claim_order_is_exact_across_priorities_and_queues(
    backend: RedisBackend, clock: FrozenClock
) -> None:
    # Same priority and run_at: id order. Different run_at: earlier first, even when the
    # difference is one microsecond at a far-future epoch (no float rounding in scores).
    base = datetime(2100, 1, 1, tzinfo=UTC)
    clock.set(base + timedelta(days=1))
    jobs: list[NewJob] = []
    for prio in (5, -1000, 1000, 0):
        for q in ("x", "y"):
            jobs.append(new_job(queue=q, priority=prio, run_at=base + timedelta(microseconds=2)))
            jobs.append(new_job(queue=q, priority=prio, run_at=base + timedelta(microseconds=1)))
    stored = [e.job for e in await backend.enqueue(jobs)]
    expected = sorted(stored, key=lambda j: (-j.priority, j.run_at, j.id))
    claimed = await backend.claim(claim_request(queues=("y", "x", "y"), limit=len(stored)))
    assert [c.job.id for c in claimed] == [j.id for j in expected]


async def test_chunked_enqueue_is_all_or_nothing(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "ENQUEUE_CHUNK", 3)
    await backend.configure_queue(QueueSettings(queue="small", max_depth=9))
    with pytest.raises(QueueFull):
        await backend.enqueue([new_job(queue="small") for _ in range(10)])
    assert (await backend.list_jobs(ListRequest())).jobs == ()
    batch = [new_job(queue="small", idempotency_key=f"k{i % 4}") for i in range(8)]
    results = await backend.enqueue(batch)
    assert [r.created for r in results] == [True] * 4 + [False] * 4
    assert [r.job.id for r in results[4:]] == [r.job.id for r in results[:4]]
    assert len((await backend.list_jobs(ListRequest())).jobs) == 4


async def test_wait_for_work_wakes_on_enqueue_from_another_handle(
    backend: RedisBackend, redis_url: str, clock: FrozenClock
) -> None:
    other = RedisBackend(redis_url, clock=clock)
    await other.open()
    try:
        assert not await backend.wait_for_work(["default"], timedelta(milliseconds=50))
        waiter = asyncio.create_task(backend.wait_for_work(["default"], timedelta(seconds=10)))
        deadline = asyncio.get_running_loop().time() + 10
        while not waiter.done() and asyncio.get_running_loop().time() < deadline:
            await other.enqueue([new_job()])  # repeated: the subscription may still be starting
            await asyncio.sleep(0.05)
        assert await waiter is True
        # A job for another queue does not wake a waiter of "default".
        other_queue = asyncio.create_task(
            backend.wait_for_work(["default"], timedelta(seconds=0.3))
        )
        await asyncio.sleep(0.05)
        await other.enqueue([new_job(queue="elsewhere")])
        assert await other_queue is False
    finally:
        await other.close()


async def test_wait_for_work_survives_a_killed_subscription(
    backend: RedisBackend, raw: aioredis.Redis
) -> None:
    await backend.wait_for_work(["default"], timedelta(milliseconds=50))
    await raw.client_kill_filter(_type="pubsub")
    started = asyncio.get_running_loop().time()
    assert not await backend.wait_for_work(["default"], timedelta(milliseconds=200))
    assert asyncio.get_running_loop().time() - started >= 0.15  # slept, did not spin
    deadline = started + 10
    woken = False
    while not woken and asyncio.get_running_loop().time() < deadline:
        waiter = asyncio.create_task(backend.wait_for_work(["default"], timedelta(seconds=1)))
        await asyncio.sleep(0.1)
        await backend.enqueue([new_job()])
        woken = await waiter
    assert woken, "the subscription did not come back"


async def test_memory_per_queued_job_is_bounded(backend: RedisBackend, raw: aioredis.Redis) -> None:
    before = int((await raw.info("memory"))["used_memory"])
    await backend.enqueue([new_job(kind="noop", payload={"i": i}) for i in range(10_000)])
    per_job = (int((await raw.info("memory"))["used_memory"]) - before) / 10_000
    assert 100 < per_job < 1500, per_job


async def test_more_concurrent_calls_than_pooled_connections(backend: RedisBackend) -> None:
    # The pool holds 64 connections; the 300 calls queue for them instead of failing.
    [job] = await backend.enqueue([new_job()])
    found = await asyncio.gather(*(backend.get(job.job.id) for _ in range(300)))
    assert all(j is not None and j.id == job.job.id for j in found)


async def test_handoffs_keep_counters_in_step_and_leave_no_keys(
    backend: RedisBackend, raw: aioredis.Redis, redis_url: str, clock: FrozenClock
) -> None:
    """Standing claims served by every write that makes jobs ready (enqueue, release,
    rescue, requeue): the counters still match the indexes, and once the waits are over no
    standing-claim key is left (sb:, sbq:, ho:)."""
    prefix = prefix_of(redis_url)

    def standby(token: str) -> ClaimRequest:
        return ClaimRequest(WorkerId("w"), ("a",), 1, standby=token)

    async def handed(token: str) -> list[ClaimedJob]:
        assert await backend.claim(standby(token)) == []
        return await backend.wait_for_handoff(token, ("a",), timedelta(milliseconds=50))

    assert await backend.claim(standby("s1")) == []
    [first] = await backend.enqueue([new_job(queue="a", max_attempts=3)])
    [got] = await backend.wait_for_handoff("s1", ("a",), timedelta(seconds=5))
    assert got.job.id == first.job.id
    assert await backend.claim(standby("s2")) == []
    await backend.release([got.lease])  # back to queued: handed to s2 at once
    [again] = await backend.wait_for_handoff("s2", ("a",), timedelta(seconds=5))
    assert again.job.id == first.job.id and again.lease.attempt == 1
    assert await backend.claim(standby("s3")) == []
    clock.advance(timedelta(minutes=1))
    assert (await backend.rescue()).requeued == (first.job.id,)  # its lease expired
    [rescued] = await backend.wait_for_handoff("s3", ("a",), timedelta(seconds=5))
    assert rescued.job.id == first.job.id and rescued.lease.attempt == 2
    await backend.fail(FailRequest(rescued.lease, None))
    assert await backend.claim(standby("s4")) == []
    assert await backend.requeue(RequeueRequest(JobFilter())) == [first.job.id]
    [requeued] = await backend.wait_for_handoff("s4", ("a",), timedelta(seconds=5))
    assert requeued.job.id == first.job.id and requeued.lease.attempt == 1
    assert await handed("s5") == []
    await counters_match_indexes(raw, prefix)
    left = [
        k
        async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)
        if k.split(":")[1] in ("sb", "sbq", "ho")
    ]
    assert left == []
