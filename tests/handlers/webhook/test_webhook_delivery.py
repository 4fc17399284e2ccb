"""Deliveries against real HTTP receivers on 127.0.0.1: signatures verified by the reference
libraries, outcomes (2xx, 5xx, 429/503 + Retry-After, 410, 3xx, timeouts, refused
connections), SSRF refusals proved by a listener that sees zero connections, breakers."""

from __future__ import annotations

import asyncio
import email.utils
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
import svix.webhooks
from tests.handlers.webhook.conftest import settings
from tests.handlers.webhook.receiver import Receiver, Reply

from conveyor.handler import Retry
from conveyor.handlers.webhook.delivery import DeliveryDiscarded, DeliveryFailed, DeliveryRetry
from conveyor.handlers.webhook.endpoints import EndpointStore
from conveyor.handlers.webhook.handler import WebhookHandler
from conveyor.handlers.webhook.ssrf import AddressPolicy

BODY = {"event": "invoice.paid", "amount": 42, "tags": ["a", "ü"]}


async def test_signed_delivery_verifies_with_reference_libraries(
    handler: WebhookHandler, endpoints: EndpointStore
) -> None:
    async with Receiver() as rx:
        _, secret = await endpoints.create("billing", rx.url)
        result = await handler.deliver(
            "job-1", 1, {"endpoint": "billing", "body": BODY, "headers": {"X-Tenant": "t1"}}
        )
        assert result["status"] == 200 and result["webhook_id"] == "job-1"
        assert isinstance(result["latency_ms"], float)
        [seen] = rx.requests
    assert seen.method == "POST" and seen.path == "/hook"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-tenant"] == "t1"
    assert seen.headers["webhook-id"] == "job-1"
    assert standardwebhooks.Webhook(secret).verify(seen.body, seen.headers) == BODY
    svix.webhooks.Webhook(secret).verify(seen.body, seen.headers)


async def test_one_off_url_is_unsigned(handler: WebhookHandler) -> None:
    async with Receiver() as rx:
        await handler.deliver("job-2", 1, {"url": rx.url, "body": {"x": 1}, "id": "dlv-9"})
        [seen] = rx.requests
    assert "webhook-signature" not in seen.headers
    assert seen.body == b'{"x":1}'


async def test_retry_on_500_then_success_keeps_the_webhook_id(
    handler: WebhookHandler, endpoints: EndpointStore
) -> None:
    script = [Reply(500, body=b"database on fire"), Reply(502), Reply(200)]
    async with Receiver(script=script) as rx:
        _, secret = await endpoints.create("ep", rx.url)
        payload = {"endpoint": "ep", "body": BODY, "id": "delivery-77"}
        with pytest.raises(DeliveryFailed) as first:
            await handler.deliver("job-3", 1, payload)
        assert first.value.details["status"] == 500
        assert first.value.details["response_excerpt"] == "database on fire"
        assert isinstance(first.value.details["latency_ms"], float)
        with pytest.raises(DeliveryFailed, match="HTTP 502"):
            await handler.deliver("job-3", 2, payload)
        result = await handler.deliver("job-3", 3, payload)
        assert result["status"] == 200
    assert [r.headers["webhook-id"] for r in rx.requests] == ["delivery-77"] * 3
    for seen in rx.requests:
        standardwebhooks.Webhook(secret).verify(seen.body, seen.headers)


async def test_retry_after_seconds_and_http_date(handler: WebhookHandler) -> None:
    http_date = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), True)
    script = [
        Reply(429, {"Retry-After": "7"}),
        Reply(503, {"Retry-After": http_date}),
        Reply(503),  # no Retry-After: an ordinary failure, the policy's backoff applies
    ]
    async with Receiver(script=script) as rx:
        payload = {"url": rx.url, "body": {}}
        with pytest.raises(DeliveryRetry) as r1:
            await handler.deliver("j", 1, payload)
        assert r1.value.after == timedelta(seconds=7) and r1.value.charge
        assert r1.value.details["status"] == 429
        with pytest.raises(DeliveryRetry) as r2:
            await handler.deliver("j", 2, payload)
        assert r2.value.after is not None
        assert timedelta(seconds=100) < r2.value.after <= timedelta(seconds=120)
        with pytest.raises(DeliveryFailed, match="HTTP 503"):
            await handler.deliver("j", 3, payload)


async def test_410_disables_the_endpoint(handler: WebhookHandler, endpoints: EndpointStore) -> None:
    async with Receiver(default=Reply(410, body=b"unsubscribed")) as rx:
        await endpoints.create("gone", rx.url)
        with pytest.raises(DeliveryDiscarded, match="410") as info:
            await handler.deliver("j", 1, {"endpoint": "gone", "body": {}})
        assert info.value.details["status"] == 410
        endpoint = await endpoints.require("gone")
        assert endpoint.disabled and endpoint.disabled_reason
        with pytest.raises(DeliveryDiscarded, match="disabled"):
            await handler.deliver("j2", 1, {"endpoint": "gone", "body": {}})
        assert len(rx.requests) == 1


async def test_redirects_are_not_followed(handler: WebhookHandler) -> None:
    async with Receiver() as target:
        redirect = Reply(302, {"Location": target.url})
        async with Receiver(default=redirect) as rx:
            with pytest.raises(DeliveryFailed, match="redirects are not followed") as info:
                await handler.deliver("j", 1, {"url": rx.url, "body": {}})
            assert info.value.details["status"] == 302
        assert target.requests == [] and target.connections == 0


async def test_total_timeout_and_refused_connection(records: object) -> None:
    from conveyor.backends.memory_records import MemoryRecords

    assert isinstance(records, MemoryRecords)
    handler = WebhookHandler(records, settings=settings(total_timeout=timedelta(seconds=0.4)))
    try:
        async with Receiver(default=Reply(hang=True)) as rx:
            started = asyncio.get_running_loop().time()
            with pytest.raises(DeliveryFailed, match="timeout") as info:
                await handler.deliver("j", 1, {"url": rx.url, "body": {}})
            elapsed = asyncio.get_running_loop().time() - started
            assert 0.35 < elapsed < 1.5
            assert info.value.details["status"] is None
            assert info.value.details["error"] == "timeout"
            port = rx.port
        with pytest.raises(DeliveryFailed) as refused:
            await handler.deliver("j", 2, {"url": f"http://127.0.0.1:{port}/", "body": {}})
        assert refused.value.details["error"] == "connection"
    finally:
        await handler.aclose()


async def test_response_read_is_bounded(handler: WebhookHandler) -> None:
    big = b"x" * 2_000_000
    async with Receiver(default=Reply(500, body=big)) as rx:
        with pytest.raises(DeliveryFailed) as info:
            await handler.deliver("j", 1, {"url": rx.url, "body": {}})
    excerpt = info.value.details["response_excerpt"]
    assert isinstance(excerpt, str) and 0 < len(excerpt) <= 1024


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "0x7f.1", "2130706433", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]", "localhost"],
)
async def test_ssrf_refused_and_nothing_is_sent(records: object, host: str) -> None:
    from conveyor.backends.memory_records import MemoryRecords

    assert isinstance(records, MemoryRecords)
    strict = WebhookHandler(records, settings=settings(policy=AddressPolicy()))
    store = EndpointStore(records)
    try:
        async with Receiver() as rx:
            url = f"http://{host}:{rx.port}/hook"
            with pytest.raises(DeliveryDiscarded, match="loopback") as one_off:
                await strict.deliver("j", 1, {"url": url, "body": {}})
            assert "refused" in one_off.value.details
            await store.create("internal", url)
            with pytest.raises(DeliveryDiscarded, match="refused"):
                await strict.deliver("j", 1, {"endpoint": "internal", "body": {}})
            await asyncio.sleep(0.05)
            assert rx.connections == 0 and rx.requests == []
    finally:
        await strict.aclose()


async def test_invalid_payloads_are_discarded(handler: WebhookHandler) -> None:
    bad = [
        {"body": {}},
        {"url": "http://127.0.0.1:1/", "endpoint": "x", "body": {}},
        {"url": "http://127.0.0.1:1/", "body": {}, "headers": {"webhook-id": "forged"}},
        {"url": "http://127.0.0.1:1/", "body": {}, "headers": {"X-Bad": "a\r\nInjected: 1"}},
        {"url": "http://127.0.0.1:1/", "body": {}, "secret": "whsec_x"},
        {"endpoint": "does-not-exist", "body": {}},
        {"url": "ftp://127.0.0.1/", "body": {}},
    ]
    for payload in bad:
        with pytest.raises(DeliveryDiscarded):
            await handler.deliver("j", 1, payload)  # type: ignore[arg-type]


async def test_breaker_opens_defers_without_sending_and_closes_after_a_probe(
    handler: WebhookHandler,
) -> None:
    healthy = False

    def respond(_: object) -> Reply:
        return Reply(200) if healthy else Reply(500)

    async with Receiver(respond=respond) as rx:
        payload = {"url": rx.url, "body": {}}
        for attempt in range(4):  # min_requests=4, all failing
            with pytest.raises(DeliveryFailed):
                await handler.deliver("j", attempt + 1, payload)
        with pytest.raises(Retry) as deferred:
            await handler.deliver("j", 5, payload)
        assert deferred.value.charge is False and "circuit breaker" in deferred.value.reason
        assert deferred.value.after is not None
        assert timedelta(0) < deferred.value.after <= timedelta(milliseconds=300)
        assert len(rx.requests) == 4
        assert handler.metrics.breakers.states()[f"127.0.0.1:{rx.port}"].value == "open"
        healthy = True
        await asyncio.sleep(0.35)
        assert (await handler.deliver("j", 5, payload))["status"] == 200  # the probe
        assert (await handler.deliver("j", 6, payload))["status"] == 200
        assert len(rx.requests) == 6
        assert handler.metrics.breakers.states()[f"127.0.0.1:{rx.port}"].value == "closed"


async def test_failed_probe_reopens(handler: WebhookHandler) -> None:
    async with Receiver(default=Reply(500)) as rx:
        payload = {"url": rx.url, "body": {}}
        for attempt in range(4):
            with pytest.raises(DeliveryFailed):
                await handler.deliver("j", attempt + 1, payload)
        await asyncio.sleep(0.35)
        with pytest.raises(DeliveryFailed):
            await handler.deliver("j", 5, payload)  # the probe fails
        with pytest.raises(Retry) as deferred:
            await handler.deliver("j", 6, payload)
        assert deferred.value.after is not None
        assert deferred.value.after > timedelta(milliseconds=300)  # open for longer now
        assert len(rx.requests) == 5


async def test_metrics_count_outcomes(handler: WebhookHandler, endpoints: EndpointStore) -> None:
    async with Receiver(script=[Reply(500), Reply(200)]) as rx:
        await endpoints.create("m", rx.url)
        with pytest.raises(DeliveryFailed):
            await handler.deliver("j", 1, {"endpoint": "m", "body": {}})
        await handler.deliver("j", 2, {"endpoint": "m", "body": {}})
    text = handler.metrics.registry.get_sample_value
    assert text("conveyor_webhook_deliveries_total", {"endpoint": "m", "outcome": "success"}) == 1
    assert text("conveyor_webhook_deliveries_total", {"endpoint": "m", "outcome": "retry"}) == 1
    assert text("conveyor_webhook_latency_seconds_count", {"endpoint": "m"}) == 2
