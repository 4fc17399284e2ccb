"""Fixtures of the conformance suite: every test here runs once per engine (memory, sqlite,
postgres, redis), against a fresh store, through the ``Backend`` protocol only.

* ``engine``: the engine's name, marked with its pytest mark (``-m memory`` selects one);
* ``backend_url``: the per-test store of that engine, resolved lazily (tests/conftest.py);
* ``clock``: a ``FrozenClock`` shared by every handle of the test;
* ``backend``: an opened handle; ``backend_factory``: opens another handle on the same store
  (for memory, the same instance: one process has one store).

Builders used across the suite: ``new_job``, ``claim_request``, ``enqueue_one``, ``claim_one``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta

import pytest

from conveyor.backend import Backend, ClaimedJob, ClaimRequest
from conveyor.backends import open_backend
from conveyor.clock import FrozenClock
from conveyor.jobs import Job, JSONObject, NewJob, WorkerId

ENGINES = ("memory", "sqlite", "postgres", "redis")

BackendFactory = Callable[[], Awaitable[Backend]]


@pytest.fixture(params=[pytest.param(n, marks=getattr(pytest.mark, n)) for n in ENGINES])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_url(engine: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{engine}_url"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def backend(backend_url: str, clock: FrozenClock) -> AsyncIterator[Backend]:
    handle = open_backend(backend_url, clock=clock)
    await handle.open()
    try:
        yield handle
    finally:
        await handle.close()


@pytest.fixture
async def backend_factory(
    backend: Backend, backend_url: str, clock: FrozenClock, engine: str
) -> AsyncIterator[BackendFactory]:
    opened: list[Backend] = []

    async def factory() -> Backend:
        if engine == "memory":
            return backend
        handle = open_backend(backend_url, clock=clock)
        await handle.open()
        opened.append(handle)
        return handle

    try:
        yield factory
    finally:
        for handle in opened:
            await handle.close()


def new_job(kind: str = "test.echo", payload: JSONObject | None = None, **kw: object) -> NewJob:
    return NewJob(kind=kind, payload=payload if payload is not None else {}, **kw)  # type: ignore[arg-type]


def claim_request(
    worker: str = "w",
    queues: Sequence[str] = ("default",),
    limit: int = 1,
    lease_for: timedelta = timedelta(seconds=30),
) -> ClaimRequest:
    return ClaimRequest(
        worker=WorkerId(worker), queues=tuple(queues), limit=limit, lease_for=lease_for
    )


async def enqueue_one(backend: Backend, **kw: object) -> Job:
    [enqueued] = await backend.enqueue([new_job(**kw)])  # type: ignore[arg-type]
    assert enqueued.created
    return enqueued.job


async def claim_one(
    backend: Backend,
    worker: str = "w",
    queues: Sequence[str] = ("default",),
    lease_for: timedelta = timedelta(seconds=30),
) -> ClaimedJob:
    claimed = await backend.claim(claim_request(worker, queues, 1, lease_for))
    assert len(claimed) == 1, f"expected one claimable job, got {len(claimed)}"
    return claimed[0]
