"""Conformance: job logs, the worker registry, API tokens, wake-ups and the lifecycle
(migrations, the backend's clock)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from tests.backends.conftest import BackendFactory, claim_one, enqueue_one, new_job

from conveyor.backend import Backend, Capability, Completion, TokenRecord, WorkerInfo
from conveyor.backends import open_backend
from conveyor.clock import FrozenClock
from conveyor.errors import JobNotFound
from conveyor.ids import new_job_id
from conveyor.jobs import WorkerId

# ----------------------------------------------------------------------------- logs


async def test_logs_append_and_read(backend: Backend, clock: FrozenClock) -> None:
    job = await enqueue_one(backend)
    await backend.append_log(job.id, ["step 1", "ünïcode ✓ 🚀"])
    clock.advance(timedelta(seconds=1))
    await backend.append_log(job.id, ["step 3", "", "step 5"])
    lines = await backend.read_log(job.id)
    assert [(ln.seq, ln.line) for ln in lines] == [
        (1, "step 1"),
        (2, "ünïcode ✓ 🚀"),
        (3, "step 3"),
        (4, ""),
        (5, "step 5"),
    ]
    assert lines[0].at == clock.now() - timedelta(seconds=1) and lines[4].at == clock.now()
    after = await backend.read_log(job.id, after=2)
    assert [ln.seq for ln in after] == [3, 4, 5]
    assert [ln.seq for ln in await backend.read_log(job.id, after=1, limit=2)] == [2, 3]
    assert await backend.read_log(job.id, after=5) == []


async def test_logs_are_per_job(backend: Backend) -> None:
    a = await enqueue_one(backend)
    b = await enqueue_one(backend)
    await backend.append_log(a.id, ["a1"])
    await backend.append_log(b.id, ["b1", "b2"])
    await backend.append_log(a.id, ["a2"])
    assert [(ln.seq, ln.line) for ln in await backend.read_log(a.id)] == [(1, "a1"), (2, "a2")]
    assert [(ln.seq, ln.line) for ln in await backend.read_log(b.id)] == [(1, "b1"), (2, "b2")]


async def test_logs_in_any_status(backend: Backend) -> None:
    job = await enqueue_one(backend)
    claimed = await claim_one(backend)
    await backend.append_log(job.id, ["running"])
    assert await backend.complete([Completion(claimed.lease)]) == []
    await backend.append_log(job.id, ["after completion"])
    assert [ln.line for ln in await backend.read_log(job.id)] == ["running", "after completion"]


async def test_logs_of_unknown_job(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.append_log(new_job_id(), ["x"])
    assert await backend.read_log(new_job_id()) == []


async def test_concurrent_log_appends_keep_seq_dense(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    job = await enqueue_one(backend)
    other = await backend_factory()
    await asyncio.gather(
        *(h.append_log(job.id, [f"{i}-a", f"{i}-b"]) for i in range(10) for h in (backend, other))
    )
    lines = await backend.read_log(job.id)
    assert [ln.seq for ln in lines] == list(range(1, 41))
    for i in range(10):  # one call's lines stay together and in order
        seqs = [ln.seq for ln in lines if ln.line.startswith(f"{i}-")]
        assert len(seqs) == 4


# ----------------------------------------------------------------------------- workers


def worker_info(worker_id: str, running: int = 0) -> WorkerInfo:
    return WorkerInfo(
        id=WorkerId(worker_id),
        host="host-ü",
        pid=4242,
        queues=("default", "webhooks"),
        kinds=("webhook", "myapp.send_email"),
        concurrency=64,
        running=running,
        started_at=datetime(2029, 12, 31, 23, 0, tzinfo=UTC),
    )


async def test_worker_registry(backend: Backend, clock: FrozenClock) -> None:
    await backend.upsert_worker(worker_info("w1"))
    [w] = await backend.list_workers(timedelta(minutes=1))
    assert w == replace(worker_info("w1"), last_seen_at=clock.now())
    assert w.id == "w1" and w.host == "host-ü" and w.pid == 4242
    assert w.queues == ("default", "webhooks") and w.kinds == ("webhook", "myapp.send_email")
    assert w.concurrency == 64 and w.running == 0
    assert w.started_at == datetime(2029, 12, 31, 23, 0, tzinfo=UTC)
    assert w.last_seen_at == clock.now()  # stamped by the backend's clock
    clock.advance(timedelta(seconds=30))
    await backend.upsert_worker(worker_info("w2"))
    clock.advance(timedelta(seconds=40))
    assert [w.id for w in await backend.list_workers(timedelta(minutes=1))] == ["w2"]
    await backend.upsert_worker(worker_info("w1", running=7))
    listed = {w.id: w for w in await backend.list_workers(timedelta(minutes=1))}
    assert set(listed) == {"w1", "w2"}
    assert listed["w1"].running == 7 and listed["w1"].last_seen_at == clock.now()
    await backend.remove_worker(WorkerId("w1"))
    assert [w.id for w in await backend.list_workers(timedelta(hours=1))] == ["w2"]
    await backend.remove_worker(WorkerId("never-registered"))


# ----------------------------------------------------------------------------- tokens


def token(token_id: str, secret: str, at: datetime) -> TokenRecord:
    return TokenRecord(
        id=token_id,
        name=f"name {token_id}",
        scopes=("jobs:read", "jobs:write"),
        secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        created_at=at,
    )


async def test_tokens(backend: Backend, clock: FrozenClock) -> None:
    first = token("t1", "secret-1", clock.now())
    second = token("t2", "secret-2", clock.now() + timedelta(seconds=1))
    await backend.create_token(first)
    await backend.create_token(second)
    assert await backend.find_token(first.secret_hash) == first
    assert await backend.find_token(hashlib.sha256(b"nope").hexdigest()) is None
    assert sorted(await backend.list_tokens(), key=lambda t: t.id) == [first, second]
    clock.advance(timedelta(minutes=1))
    assert await backend.revoke_token("t1") is True
    assert await backend.revoke_token("t1") is False
    assert await backend.revoke_token("unknown") is False
    revoked = await backend.find_token(first.secret_hash)
    assert revoked is not None and revoked.revoked_at == clock.now()
    listed = {t.id: t for t in await backend.list_tokens()}
    assert listed["t1"].revoked_at == clock.now() and listed["t2"].revoked_at is None


# ----------------------------------------------------------------------------- wake-ups


async def test_wait_for_work_wakes_on_enqueue_from_another_handle(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    if Capability.NOTIFY not in backend.capabilities:
        pytest.skip("engine without NOTIFY: wait_for_work only sleeps")
    other = await backend_factory()
    waiter = asyncio.create_task(backend.wait_for_work(["default"], timedelta(seconds=10)))
    started = time.monotonic()
    # A notification sent before the waiter subscribed is lost (a hint, not a queue), so
    # keep enqueueing until the waiter wakes; it must wake well before its timeout.
    while not waiter.done():
        await other.enqueue([new_job()])
        await asyncio.wait({waiter}, timeout=0.05)
    assert waiter.result() is True
    assert time.monotonic() - started < 5


async def test_wait_for_work_ignores_other_queues(
    backend: Backend, backend_factory: BackendFactory
) -> None:
    if Capability.NOTIFY not in backend.capabilities:
        pytest.skip("engine without NOTIFY")
    other = await backend_factory()
    waiter = asyncio.create_task(backend.wait_for_work(["mine"], timedelta(seconds=0.5)))
    while not waiter.done():
        await other.enqueue([new_job(queue="not-mine")])
        await asyncio.wait({waiter}, timeout=0.05)
    assert waiter.result() is False


async def test_wait_for_work_times_out(backend: Backend) -> None:
    started = time.monotonic()
    woken = await backend.wait_for_work(["default"], timedelta(milliseconds=200))
    elapsed = time.monotonic() - started
    assert woken is False
    assert 0.15 <= elapsed < 3


# ----------------------------------------------------------------------------- lifecycle


async def test_migrations_up_to_date(backend: Backend) -> None:
    status = await backend.migration_status()
    assert status.up_to_date and status.latest >= 1
    again = await backend.migrate()  # idempotent
    assert again.up_to_date and again == await backend.migration_status()


async def test_now_follows_frozen_clock(backend: Backend, clock: FrozenClock) -> None:
    assert await backend.now() == clock.now()
    clock.advance(timedelta(hours=3, microseconds=7))
    now = await backend.now()
    assert now == clock.now() and now.utcoffset() == timedelta(0)


async def test_url_is_masked(backend: Backend) -> None:
    assert ":***@" in backend.url or "@" not in backend.url
    assert backend.capabilities <= frozenset(Capability)


async def test_close_wakes_sleepers(backend_url: str, clock: FrozenClock) -> None:
    """Decision: closing a handle wakes its wait_for_work callers (no hang, no cancel)."""
    handle = open_backend(backend_url, clock=clock)
    await handle.open()
    waiter = asyncio.create_task(handle.wait_for_work(["default"], timedelta(seconds=30)))
    await asyncio.sleep(0.05)  # let the waiter start sleeping
    await handle.close()
    try:
        done, _ = await asyncio.wait({waiter}, timeout=5)
        assert waiter in done, "wait_for_work still sleeping 5 s after close()"
        assert isinstance(waiter.result(), bool)
    finally:
        waiter.cancel()
