"""Prometheus metrics of webhook delivery: deliveries by endpoint and outcome, attempt latency,
and circuit-breaker state per destination.

Who calls it: the webhook handler (``delivered``, ``observe_latency``, and ``set_state`` as the
breaker listener), the API (``refresh_breakers`` before a scrape, so ``/metrics`` on an API
process shows the shared breaker state too). Register one ``WebhookMetrics`` per registry:
pass the process's ``ConveyorMetrics.registry`` so the webhook series appear on its
``/metrics``; with no registry a private one is used (tests, or metrics not wanted).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.handlers.webhook.breaker import STATE_VALUES, BreakerSnapshot, BreakerState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class BreakerStateCollector(Collector):
    """``conveyor_webhook_breaker_state{host}``: 0 closed, 1 half-open, 2 open."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}
        self._lock = threading.Lock()

    def set(self, host: str, state: BreakerState) -> None:
        with self._lock:
            self._states[host] = state

    def replace_all(self, snapshots: Iterable[BreakerSnapshot]) -> None:
        with self._lock:
            self._states = {s.host: s.state for s in snapshots}

    def states(self) -> dict[str, BreakerState]:
        with self._lock:
            return dict(self._states)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "conveyor_webhook_breaker_state",
            "Circuit breaker per webhook destination: 0 closed, 1 half-open, 2 open.",
            labels=["host"],
        )
        for host, state in sorted(self.states().items()):
            family.add_metric([host], STATE_VALUES[state])
        yield family


class WebhookMetrics:
    """The webhook series, in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "conveyor_webhook_deliveries",
            "Webhook attempts by endpoint ('-' for one-off URLs) and outcome (success, retry, "
            "failed, gone, refused, deferred, invalid).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "conveyor_webhook_latency_seconds",
            "Time from sending a webhook to its response (or timeout), by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.breakers = BreakerStateCollector()
        self.registry.register(self.breakers)

    def delivered(self, endpoint: str, outcome: str) -> None:
        self.deliveries.labels(endpoint, outcome).inc()

    def observe_latency(self, endpoint: str, seconds: float) -> None:
        self.latency.labels(endpoint).observe(seconds)

    def set_state(self, host: str, state: BreakerState) -> None:
        self.breakers.set(host, state)

    def refresh_breakers(self, snapshots: Iterable[BreakerSnapshot]) -> None:
        self.breakers.replace_all(snapshots)
