"""The built-in ``webhook`` kind: signed (Standard Webhooks), retried over about a day,
circuit-broken per destination, SSRF-safe HTTP deliveries to named endpoints or bare URLs.

Modules: ``signing`` (headers), ``ssrf`` (which addresses), ``transport`` (pinned HTTP),
``breaker`` (shared circuit breakers), ``endpoints`` (named endpoints and secrets),
``delivery`` (payload, signals, schedule), ``handler`` (the kind), ``client`` (enqueue from
Python), ``metrics`` and ``ratelimit``.
"""

from __future__ import annotations

from conveyor.handlers.webhook.breaker import BreakerConfig, BreakerState, CircuitBreakers
from conveyor.handlers.webhook.client import WebhookClient, install_webhooks, webhook_job
from conveyor.handlers.webhook.delivery import (
    WEBHOOK_KIND,
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_QUEUE,
    WEBHOOK_RETRY_POLICY,
    DeliveryDiscarded,
    DeliveryFailed,
    DeliveryRetry,
    webhook_options,
)
from conveyor.handlers.webhook.endpoints import Endpoint, EndpointStore
from conveyor.handlers.webhook.handler import WebhookHandler, WebhookSettings
from conveyor.handlers.webhook.metrics import WebhookMetrics
from conveyor.handlers.webhook.ssrf import AddressPolicy, DestinationRefused

__all__ = [
    "WEBHOOK_KIND",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_QUEUE",
    "WEBHOOK_RETRY_POLICY",
    "AddressPolicy",
    "BreakerConfig",
    "BreakerState",
    "CircuitBreakers",
    "DeliveryDiscarded",
    "DeliveryFailed",
    "DeliveryRetry",
    "DestinationRefused",
    "Endpoint",
    "EndpointStore",
    "WebhookClient",
    "WebhookHandler",
    "WebhookMetrics",
    "WebhookSettings",
    "install_webhooks",
    "webhook_job",
    "webhook_options",
]
