"""Prometheus metrics for Conveyor, fed by the ``EventBus`` (one subscriber, no calls from the
hot path into Prometheus beyond counter increments).

Who calls it: the API factory (``install_metrics(bus, backend=...)`` then ``render()`` on
``GET /metrics``), the HTTP middleware (``observe_request``), and standalone workers
(``install_metrics(bus)`` + ``start_metrics_server(port, metrics)``). Each
``ConveyorMetrics`` owns its own ``CollectorRegistry``, so several apps in one process (tests)
never collide in prometheus-client's global registry.

Queue depth is not pushed by events: it is read from ``backend.stats()`` at scrape time
(``refresh_queue_depth``, cached for a couple of seconds so a scrape storm cannot hammer the
store) and exposed by a custom collector.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.backend import QueueAdmin, QueueStats
from conveyor.events import (
    ActiveJobs,
    Event,
    EventBus,
    JobCancelled,
    JobClaimed,
    JobCompleted,
    JobEnqueued,
    JobFailed,
    WorkerStopped,
)
from conveyor.jobs import JobStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds; job durations span milliseconds (python tasks) to many minutes (builds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
PICKUP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Label children kept per label set (bounded: labels come from requests and job kinds).
CHILD_CACHE_MAX = 10_000
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class QueueDepthCollector(Collector):
    """``conveyor_queue_depth{queue,status}`` from the latest cached ``stats()`` snapshot."""

    def __init__(self) -> None:
        self._stats: Sequence[QueueStats] = ()
        self._lock = threading.Lock()

    def update(self, stats: Sequence[QueueStats]) -> None:
        with self._lock:
            self._stats = tuple(stats)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "conveyor_queue_depth", "Jobs per queue and status.", labels=["queue", "status"]
        )
        paused = GaugeMetricFamily(
            "conveyor_queue_paused", "1 when the queue is paused.", labels=["queue"]
        )
        with self._lock:
            stats = self._stats
        for entry in stats:
            for status in JobStatus:
                family.add_metric([entry.queue, status.value], entry.counts.get(status, 0))
            paused.add_metric([entry.queue], 1.0 if entry.paused else 0.0)
        yield family
        yield paused


class ConveyorMetrics:
    """Every Conveyor metric, in one registry. Feed it with ``handle(event)``."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, depth_cache: timedelta | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.enqueued = Counter(
            "conveyor_jobs_enqueued", "Jobs stored by enqueue.", ["queue", "kind"], registry=r
        )
        self.processed = Counter(
            "conveyor_jobs_processed",
            "Attempts that ended, by outcome (completed, retried, failed, cancelled).",
            ["queue", "kind", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "conveyor_job_failures",
            "Failed attempts, by error type.",
            ["queue", "kind", "error_type"],
            registry=r,
        )
        self.duration = Histogram(
            "conveyor_job_duration_seconds",
            "Time a handler ran for one attempt.",
            ["queue", "kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.pickup = Histogram(
            "conveyor_job_pickup_seconds",
            "Time from a job being due to a worker claiming it.",
            ["queue"],
            buckets=PICKUP_BUCKETS,
            registry=r,
        )
        self.active = Gauge(
            "conveyor_worker_active_jobs", "Jobs running on a worker.", ["worker"], registry=r
        )
        self.http_requests = Counter(
            "conveyor_http_requests",
            "HTTP requests served by the API, by route template.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "conveyor_http_request_duration_seconds",
            "HTTP request latency, by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.depth = QueueDepthCollector()
        r.register(self.depth)
        self._depth_cache = (depth_cache or timedelta(seconds=2)).total_seconds()
        self._depth_at = float("-inf")
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._enqueued_children: dict[tuple[str, str], Counter] = {}

    # ------------------------------------------------------------------ event subscriber

    def handle(self, event: Event) -> None:
        """The ``EventBus`` subscriber: one counter or histogram update per event."""
        if isinstance(event, JobEnqueued):
            if event.created:
                self._enqueued_child(event.queue, event.kind).inc()
        elif isinstance(event, JobClaimed):
            self.pickup.labels(event.queue).observe(max(event.pickup.total_seconds(), 0.0))
        elif isinstance(event, JobCompleted):
            self.processed.labels(event.queue, event.kind, "completed").inc()
            self.duration.labels(event.queue, event.kind).observe(event.duration.total_seconds())
        elif isinstance(event, JobFailed):
            outcome = "failed" if event.final else "retried"
            self.processed.labels(event.queue, event.kind, outcome).inc()
            self.failures.labels(event.queue, event.kind, event.error_type or "unknown").inc()
            self.duration.labels(event.queue, event.kind).observe(event.duration.total_seconds())
        elif isinstance(event, JobCancelled):
            self.processed.labels(event.queue, event.kind, "cancelled").inc()
        elif isinstance(event, ActiveJobs):
            self.active.labels(event.worker).set(event.running)
        elif isinstance(event, WorkerStopped):
            self.active.labels(event.worker).set(0)

    def _enqueued_child(self, queue: str, kind: str) -> Counter:
        child = self._enqueued_children.get((queue, kind))
        if child is None:
            child = self.enqueued.labels(queue, kind)
            if len(self._enqueued_children) < CHILD_CACHE_MAX:
                self._enqueued_children[(queue, kind)] = child
        return child

    # ------------------------------------------------------------------ HTTP and scrapes

    def observe_request(self, method: str, route: str, status: int, elapsed: float) -> None:
        # Children cached per label set: ``labels()`` validates and locks on every call.
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
            if len(self._http_children) < CHILD_CACHE_MAX:
                self._http_children[key] = children
        children[0].inc()
        children[1].observe(elapsed)

    async def refresh_queue_depth(self, backend: QueueAdmin) -> None:
        """Re-read ``stats()`` unless the cached snapshot is fresh enough."""
        now = time.monotonic()
        if now - self._depth_at < self._depth_cache:
            return
        self.depth.update(await backend.stats())
        self._depth_at = time.monotonic()

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in this registry."""
        return generate_latest(self.registry)


def install_metrics(bus: EventBus, *, registry: CollectorRegistry | None = None) -> ConveyorMetrics:
    """Create the metrics and subscribe them to ``bus``. Returns them (keep a reference)."""
    metrics = ConveyorMetrics(registry)
    bus.subscribe(metrics.handle)
    return metrics


def start_metrics_server(
    port: int, metrics: ConveyorMetrics, *, host: str = "127.0.0.1"
) -> Callable[[], None]:
    """Serve ``metrics`` on ``http://host:port/metrics`` from a daemon thread (for workers,
    which have no web stack). Loopback by default. Returns a function that stops it."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
