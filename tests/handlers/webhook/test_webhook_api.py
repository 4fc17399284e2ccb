"""``/webhooks`` over HTTP (ASGI transport): create shows the secret once, list/show never do,
update, rotate with overlap (both secrets sign), delete, breakers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import standardwebhooks
from tests.handlers.webhook.conftest import settings
from tests.handlers.webhook.receiver import Receiver

from conveyor.api import webhooks
from conveyor.api.app import create_app
from conveyor.backends.memory import MemoryBackend
from conveyor.backends.memory_records import MemoryRecords
from conveyor.handlers.webhook.handler import WebhookHandler


def backend_with_records() -> MemoryBackend:
    """MemoryBackend plus MemoryRecords, as the lead will compose them."""
    backend = MemoryBackend()
    records = MemoryRecords()
    for name in ("get_record", "list_records", "put_record", "delete_record"):
        setattr(backend, name, getattr(records, name))
    return backend


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, MemoryBackend]]:
    backend = backend_with_records()
    app = create_app(backend, tokens_required=False)
    app.include_router(webhooks.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c, backend


async def test_endpoint_lifecycle(client: tuple[httpx.AsyncClient, MemoryBackend]) -> None:
    c, _ = client
    created = await c.post(
        "/webhooks/endpoints", json={"name": "billing", "url": "https://example.com/hook"}
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    assert created.headers["location"] == "/webhooks/endpoints/billing"
    dup = await c.post("/webhooks/endpoints", json={"name": "billing", "url": "https://x.org/"})
    assert dup.status_code == 409
    assert dup.headers["content-type"].startswith("application/problem+json")
    listed = await c.get("/webhooks/endpoints")
    shown = await c.get("/webhooks/endpoints/billing")
    for response in (listed, shown):
        assert response.status_code == 200 and secret not in response.text
        assert "whsec_" not in response.text
    assert shown.json()["active_secrets"] == 1
    patched = await c.patch("/webhooks/endpoints/billing", json={"rate_limit": 5, "disabled": True})
    assert patched.json()["rate_limit"] == 5 and patched.json()["disabled"] is True
    cleared = await c.patch(
        "/webhooks/endpoints/billing", json={"rate_limit": None, "disabled": False}
    )
    assert cleared.json()["rate_limit"] is None and cleared.json()["disabled"] is False
    rotated = await c.post("/webhooks/endpoints/billing/rotate", json={"overlap_seconds": 60})
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != secret and rotated.json()["active_secrets"] == 2
    assert rotated.json()["previous_secret_expires_at"]
    assert (await c.delete("/webhooks/endpoints/billing")).status_code == 204
    assert (await c.get("/webhooks/endpoints/billing")).status_code == 404
    assert (await c.delete("/webhooks/endpoints/billing")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad name!", "url": "https://example.com/"},
        {"name": "ok", "url": "ftp://example.com/"},
        {"name": "ok", "url": "https://example.com/", "secret": "not-a-secret"},
        {"name": "ok", "url": "https://example.com/", "rate_limit": 0},
    ],
)
async def test_invalid_endpoints(
    client: tuple[httpx.AsyncClient, MemoryBackend], body: dict[str, object]
) -> None:
    c, _ = client
    response = await c.post("/webhooks/endpoints", json=body)
    assert response.status_code == 422
    assert "not-a-secret" not in response.text


async def test_rotation_overlap_signs_with_both(
    client: tuple[httpx.AsyncClient, MemoryBackend],
) -> None:
    c, backend = client
    async with Receiver() as rx:
        old = (await c.post("/webhooks/endpoints", json={"name": "r", "url": rx.url})).json()
        new = (await c.post("/webhooks/endpoints/r/rotate")).json()
        handler = WebhookHandler(backend, settings=settings())  # type: ignore[arg-type]
        try:
            await handler.deliver("j", 1, {"endpoint": "r", "body": {"a": 1}})
        finally:
            await handler.aclose()
        [seen] = rx.requests
    assert len(seen.headers["webhook-signature"].split(" ")) == 2
    for secret in (old["secret"], new["secret"]):
        standardwebhooks.Webhook(secret).verify(seen.body, seen.headers)


async def test_breakers_listing(client: tuple[httpx.AsyncClient, MemoryBackend]) -> None:
    c, backend = client
    handler = WebhookHandler(backend, settings=settings())  # type: ignore[arg-type]
    try:
        for _ in range(4):
            await (await handler.runtime()).breakers.report("dead.example:443", False)
    finally:
        await handler.aclose()
    response = await c.get("/webhooks/breakers")
    assert response.status_code == 200
    [breaker] = response.json()
    assert breaker["host"] == "dead.example:443" and breaker["state"] == "open"
