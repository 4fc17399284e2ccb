"""Jobs enqueued over HTTP take their kind's registered defaults (queue, attempts, priority,
timeout) where the request leaves them out, and the webhook kind is known without a worker."""

from __future__ import annotations

from datetime import timedelta

import httpx

from conveyor.api import create_app
from conveyor.app import Conveyor
from conveyor.backend import Backend
from conveyor.settings import Settings


async def _client(backend: Backend, app: Conveyor) -> httpx.AsyncClient:
    api = create_app(
        backend,
        settings=Settings(),
        kind_defaults={r.kind: r.options for r in app.registry},
        tokens_required=False,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api")


def _app() -> Conveyor:
    app = Conveyor("memory://")

    @app.task(
        name="tests.send_email",
        queue="emails",
        max_attempts=8,
        priority=5,
        timeout=timedelta(seconds=30),
    )
    async def send_email(to: str) -> None:
        return None

    return app


async def test_omitted_options_come_from_the_kind(backend: Backend) -> None:
    app = _app()
    kind = next(k for k in app.registry.kinds() if k.endswith("send_email"))
    async with await _client(backend, app) as client:
        response = await client.post("/jobs", json={"kind": kind, "payload": {"to": "a@b.c"}})
        assert response.status_code == 201, response.text
        job = response.json()
        assert (job["queue"], job["max_attempts"], job["priority"]) == ("emails", 8, 5)
        assert job["timeout_seconds"] == 30.0
        given = await client.post(
            "/jobs",
            json={"kind": kind, "payload": {"to": "a@b.c"}, "queue": "other", "max_attempts": 2},
        )
        assert (given.json()["queue"], given.json()["max_attempts"]) == ("other", 2)
        assert given.json()["priority"] == 5  # still the kind's, as it was not given
    app.close()


async def test_webhook_kind_is_built_in(backend: Backend) -> None:
    app = Conveyor("memory://")
    async with await _client(backend, app) as client:
        response = await client.post(
            "/jobs", json={"kind": "webhook", "payload": {"url": "https://example.com/hook"}}
        )
        assert response.status_code == 201, response.text
        job = response.json()
        registered = app.registry.get("webhook")
        assert registered is not None
        assert job["queue"] == registered.options.queue == "webhooks"
        assert job["max_attempts"] == registered.options.max_attempts
        batch = await client.post(
            "/jobs/batch",
            json={"jobs": [{"kind": "webhook", "payload": {"url": "https://example.com/x"}}]},
        )
        assert batch.status_code == 201 and batch.json()[0]["queue"] == "webhooks"
    app.close()


async def test_metrics_show_breaker_states(backend: Backend) -> None:
    from conveyor.handlers.webhook.breaker import BreakerConfig, CircuitBreakers

    app = Conveyor("memory://")
    config = BreakerConfig(min_requests=2, flush_interval=timedelta(0), cache_ttl=timedelta(0))
    breakers = CircuitBreakers(backend, config)
    for _ in range(3):
        await breakers.report("hooks.example.com:443", ok=False)
    await breakers.flush()
    async with await _client(backend, app) as client:
        text = (await client.get("/metrics")).text
    assert 'conveyor_webhook_breaker_state{host="hooks.example.com:443"} 2.0' in text
    app.close()
