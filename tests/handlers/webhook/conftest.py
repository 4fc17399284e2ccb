"""Fixtures for webhook tests: a record store, endpoint store and a handler allowed to reach
127.0.0.0/8 (explicitly, as the issue asks), with fast timeouts and a write-through breaker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from conveyor.backends.memory_records import MemoryRecords
from conveyor.handlers.webhook.breaker import BreakerConfig
from conveyor.handlers.webhook.endpoints import EndpointStore
from conveyor.handlers.webhook.handler import WebhookHandler, WebhookSettings
from conveyor.handlers.webhook.ssrf import AddressPolicy

LOCAL = AddressPolicy.parse("127.0.0.0/8")
FAST_BREAKER = BreakerConfig(
    min_requests=4,
    failure_rate=0.5,
    open_for=timedelta(milliseconds=300),
    flush_interval=timedelta(0),
    cache_ttl=timedelta(0),
)


def settings(**kw: object) -> WebhookSettings:
    base: dict[str, object] = {
        "policy": LOCAL,
        "total_timeout": timedelta(seconds=2),
        "connect_timeout": timedelta(seconds=1),
        "breaker": FAST_BREAKER,
    }
    base.update(kw)
    return WebhookSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def records() -> MemoryRecords:
    return MemoryRecords()


@pytest.fixture
def endpoints(records: MemoryRecords) -> EndpointStore:
    return EndpointStore(records)


@pytest.fixture
async def handler(records: MemoryRecords) -> AsyncIterator[WebhookHandler]:
    h = WebhookHandler(records, settings=settings())
    try:
        yield h
    finally:
        await h.aclose()
