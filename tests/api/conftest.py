"""Fixtures for the API tests: one engine per parametrization (memory, sqlite, postgres, redis,
resolved lazily like the conformance suite), the app over it, and an ``httpx`` client through
``ASGITransport`` (no sockets)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from conveyor.api import StreamSettings, create_app
from conveyor.api.auth import new_record
from conveyor.backend import Backend, ClaimedJob, ClaimRequest, FailRequest
from conveyor.backends import open_backend
from conveyor.jobs import AttemptError, WorkerId
from conveyor.settings import Settings

ENGINES = ("memory", "sqlite", "postgres", "redis")
KINDS = ("echo", "send_email")
MODULES = {"postgres": "conveyor.backends.postgres", "redis": "conveyor.backends.redis"}


@pytest.fixture(params=[pytest.param(n, marks=getattr(pytest.mark, n)) for n in ENGINES])
def engine_url(request: pytest.FixtureRequest) -> str:
    module = MODULES.get(request.param)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet")
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def backend(engine_url: str) -> AsyncIterator[Backend]:
    store = open_backend(engine_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(backend: Backend) -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    async def make(
        *,
        tokens_required: bool | None = False,
        token: str | None = None,
        settings: Settings | None = None,
    ) -> httpx.AsyncClient:
        app = create_app(
            backend,
            settings=settings or Settings(),
            registry_kinds=KINDS,
            tokens_required=tokens_required,
            stream_settings=StreamSettings(poll_interval=0.02, heartbeat_interval=0.05),
            token_cache_seconds=0.0,
        )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


TokenMaker = Callable[..., Awaitable[str]]
DeadLetter = Callable[..., Awaitable[ClaimedJob]]


@pytest.fixture
def make_token(backend: Backend) -> TokenMaker:
    async def make(*scopes: str) -> str:
        secret, record = new_record("test", list(scopes))
        await backend.create_token(record)
        return secret

    return make


async def claim_next(backend: Backend, queue: str = "default") -> ClaimedJob:
    [claimed] = await backend.claim(
        ClaimRequest(worker=WorkerId("w-test"), queues=[queue], limit=1)
    )
    return claimed


@pytest.fixture
def claim_one(backend: Backend) -> DeadLetter:
    async def claim(queue: str = "default") -> ClaimedJob:
        return await claim_next(backend, queue)

    return claim


@pytest.fixture
def dead_letter(backend: Backend) -> DeadLetter:
    """Claim the next job of a queue and fail it for good (into the dead-letter queue)."""

    async def fail(queue: str = "default") -> ClaimedJob:
        claimed = await claim_next(backend, queue)
        now = await backend.now()
        error = AttemptError(
            attempt=claimed.lease.attempt, at=now, type="ValueError", message="boom"
        )
        await backend.fail(FailRequest(lease=claimed.lease, error=error, retry_after=None))
        return claimed

    return fail
