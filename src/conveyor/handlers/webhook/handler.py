"""The ``webhook`` kind: one signed, SSRF-checked, circuit-broken HTTP POST per attempt.

Registered in a worker's ``Registry`` (``WebhookHandler`` with ``webhook_options()``); the
worker calls it once per attempt. Per attempt, in order:

1. validate the payload (a bad one is discarded);
2. look the endpoint up (missing or disabled: discarded) and check the URL's syntax;
3. the endpoint's rate limit and then the destination's circuit breaker may defer the
   delivery (``Retry(charge=False)``: no attempt spent);
4. resolve the host and check every address (refused: discarded, nothing sent);
   A destination also holds at most ``max_in_flight_per_destination`` of this process's
   slots; past that the delivery is deferred too;
5. sign (Standard Webhooks; ``webhook-id`` = payload ``id`` or the job id, stable across
   retries) and POST to the checked addresses only;
6. classify: 2xx success; 410 disables the endpoint and discards; 429/503 with
   ``Retry-After`` retry then; anything else raises ``DeliveryFailed`` and the worker retries
   along ``WEBHOOK_RETRY_POLICY``. Every failed attempt carries ``details`` (status,
   latency, response excerpt) for the dead-letter queue.

Per-process state (HTTP connection pool, breaker cache, rate-limit buckets) is created
lazily for each event loop the handler runs on, and closed by ``aclose``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from conveyor.backend import RecordStore
from conveyor.clock import Clock, SystemClock
from conveyor.errors import ConfigurationError
from conveyor.handler import JobContext, Retry
from conveyor.handlers.webhook.breaker import Admission, BreakerConfig, CircuitBreakers
from conveyor.handlers.webhook.delivery import (
    EXCERPT_IN_DETAILS,
    DeliveryDiscarded,
    DeliveryFailed,
    DeliveryRetry,
    WebhookPayload,
    parse_payload,
    parse_retry_after,
)
from conveyor.handlers.webhook.endpoints import Endpoint, EndpointStore
from conveyor.handlers.webhook.metrics import WebhookMetrics
from conveyor.handlers.webhook.ratelimit import RateLimits
from conveyor.handlers.webhook.signing import signed_headers
from conveyor.handlers.webhook.ssrf import (
    AddressPolicy,
    Destination,
    DestinationRefused,
    ResolutionFailed,
    Resolver,
    Target,
    check_destination,
    parse_target,
)
from conveyor.handlers.webhook.transport import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EXCERPT_BYTES,
    DEFAULT_TOTAL_TIMEOUT,
    DeliveryTransport,
    HTTPResult,
)
from conveyor.jobs import JSONObject, JSONValue

log = logging.getLogger("conveyor.webhooks")

RecordsProvider = Callable[[], Awaitable[RecordStore]]
ONE_OFF = "-"  # the endpoint label of deliveries to a bare URL
IN_FLIGHT_DEFER = timedelta(milliseconds=250)


def _jittered(around: timedelta) -> timedelta:
    return around * (0.5 + random.random())


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How deliveries are made. ``policy`` None: from ``CONVEYOR_WEBHOOK_ALLOWED_NETWORKS``."""

    connect_timeout: timedelta = DEFAULT_CONNECT_TIMEOUT
    total_timeout: timedelta = DEFAULT_TOTAL_TIMEOUT
    excerpt_bytes: int = DEFAULT_EXCERPT_BYTES
    policy: AddressPolicy | None = None
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    verify_tls: bool = True
    # A destination may occupy at most this many of a process's slots at once; a delivery
    # that cannot get one within ``in_flight_wait`` is deferred (not charged), so a host
    # that hangs can never hold every slot while its breaker is still gathering evidence.
    max_in_flight_per_destination: int = 32
    in_flight_wait: timedelta = timedelta(milliseconds=100)


@dataclass(slots=True)
class _Runtime:
    """What one event loop's deliveries share."""

    transport: DeliveryTransport
    breakers: CircuitBreakers
    endpoints: EndpointStore
    limits: RateLimits
    in_flight: dict[str, asyncio.Semaphore] = field(default_factory=dict)


class WebhookHandler:
    """The ``Handler`` of the ``webhook`` kind. One per process (per app) is enough."""

    def __init__(
        self,
        records: RecordStore | RecordsProvider,
        *,
        settings: WebhookSettings | None = None,
        clock: Clock | None = None,
        metrics: WebhookMetrics | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.settings = settings or WebhookSettings()
        self.policy = self.settings.policy or AddressPolicy.from_env()
        self.metrics = metrics or WebhookMetrics()
        self._records = records
        self._clock: Clock = clock or SystemClock()
        self._resolver = resolver
        self._runtimes: dict[asyncio.AbstractEventLoop, _Runtime] = {}

    async def __call__(self, ctx: JobContext) -> JSONValue:
        return await self.deliver(str(ctx.job.id), ctx.attempt, ctx.job.payload)

    async def aclose(self) -> None:
        """Flush breaker counts and close this loop's connections."""
        runtime = self._runtimes.pop(asyncio.get_running_loop(), None)
        if runtime is not None:
            await runtime.breakers.aclose()
            await runtime.transport.aclose()

    async def runtime(self) -> _Runtime:
        loop = asyncio.get_running_loop()
        runtime = self._runtimes.get(loop)
        if runtime is None:
            records = await self._record_store()
            runtime = _Runtime(
                transport=DeliveryTransport(
                    connect_timeout=self.settings.connect_timeout,
                    total_timeout=self.settings.total_timeout,
                    excerpt_bytes=self.settings.excerpt_bytes,
                    verify=self.settings.verify_tls,
                ),
                breakers=CircuitBreakers(
                    records, self.settings.breaker, self._clock, self.metrics.set_state
                ),
                endpoints=EndpointStore(records, self._clock),
                limits=RateLimits(),
            )
            self._runtimes[loop] = runtime
        return runtime

    async def _record_store(self) -> RecordStore:
        if isinstance(self._records, RecordStore):
            return self._records
        store = await self._records()
        if not isinstance(store, RecordStore):
            raise ConfigurationError("the webhook kind needs a backend that stores records")
        return store

    async def deliver(self, delivery_id: str, attempt: int, payload: JSONObject) -> JSONObject:
        """One attempt. Returns the result on 2xx; raises the worker's signals otherwise."""
        try:
            request = parse_payload(payload)
        except DeliveryDiscarded:
            self.metrics.delivered(ONE_OFF, "invalid")
            raise
        rt = await self.runtime()
        endpoint = await self._endpoint(rt, request)
        label = endpoint.name if endpoint is not None else ONE_OFF
        url = endpoint.url if endpoint is not None else str(request.url)
        target = self._target(url, label)
        if endpoint is not None and endpoint.rate_limit:
            wait = rt.limits.take(endpoint.name, endpoint.rate_limit)
            if wait > timedelta(0):
                self.metrics.delivered(label, "deferred")
                raise Retry(wait, f"rate limit of endpoint {label}", charge=False)
        slots = rt.in_flight.setdefault(
            target.breaker_key, asyncio.Semaphore(self.settings.max_in_flight_per_destination)
        )
        try:
            await asyncio.wait_for(slots.acquire(), self.settings.in_flight_wait.total_seconds())
        except TimeoutError:
            self.metrics.delivered(label, "deferred")
            reason = f"too many deliveries in flight to {target.breaker_key}"
            raise Retry(_jittered(IN_FLIGHT_DEFER), reason, charge=False) from None
        try:
            return await self._send(rt, request, endpoint, target, delivery_id)
        finally:
            slots.release()

    async def _send(
        self,
        rt: _Runtime,
        request: WebhookPayload,
        endpoint: Endpoint | None,
        target: Target,
        delivery_id: str,
    ) -> JSONObject:
        label = endpoint.name if endpoint is not None else ONE_OFF
        admission = await rt.breakers.admit(target.breaker_key)
        if not admission.allowed:
            self.metrics.delivered(label, "deferred")
            reason = f"circuit breaker for {target.breaker_key} is {admission.state.value}"
            raise Retry(admission.retry_after, reason, charge=False)
        destination = await self._check(rt, target, admission, label)
        msg_id = request.id or delivery_id
        body = request.body_bytes()
        headers = dict(request.headers)
        if endpoint is not None:
            secrets_ = endpoint.active_secrets(self._clock.now())
            headers.update(signed_headers(secrets_, msg_id, self._clock.now(), body))
        result = await rt.transport.post(destination, body, headers)
        if result.error != "connection" or result.status is not None:
            self.metrics.observe_latency(label, result.latency.total_seconds())
        return await self._outcome(
            rt,
            endpoint=endpoint,
            label=label,
            target=target,
            admission=admission,
            result=result,
            msg_id=msg_id,
        )

    async def _endpoint(self, rt: _Runtime, request: WebhookPayload) -> Endpoint | None:
        if request.endpoint is None:
            return None
        endpoint = await rt.endpoints.get(request.endpoint)
        if endpoint is None:
            self.metrics.delivered(request.endpoint, "failed")
            raise DeliveryDiscarded(f"webhook endpoint {request.endpoint!r} does not exist", {})
        if endpoint.disabled:
            self.metrics.delivered(endpoint.name, "failed")
            why = f": {endpoint.disabled_reason}" if endpoint.disabled_reason else ""
            raise DeliveryDiscarded(f"webhook endpoint {endpoint.name!r} is disabled{why}", {})
        return endpoint

    def _target(self, url: str, label: str) -> Target:
        try:
            return parse_target(url)
        except DestinationRefused as exc:
            self.metrics.delivered(label, "refused")
            raise DeliveryDiscarded(str(exc), {"refused": exc.reason}) from None

    async def _check(
        self, rt: _Runtime, target: Target, admission: Admission, label: str
    ) -> Destination:
        try:
            return await check_destination(target.url, self.policy, self._resolver)
        except DestinationRefused as exc:
            self.metrics.delivered(label, "refused")
            log.warning("webhook to %s refused: %s", target.breaker_key, exc.reason)
            raise DeliveryDiscarded(str(exc), {"refused": exc.reason}) from None
        except ResolutionFailed as exc:
            await rt.breakers.report(target.breaker_key, False, probe=admission.probe)
            self.metrics.delivered(label, "retry")
            details: JSONObject = {"status": None, "error": "dns", "detail": str(exc)}
            raise DeliveryFailed(str(exc), details) from None

    async def _outcome(
        self,
        rt: _Runtime,
        *,
        endpoint: Endpoint | None,
        label: str,
        target: Target,
        admission: Admission,
        result: HTTPResult,
        msg_id: str,
    ) -> JSONObject:
        status = result.status
        # The breaker tracks host health: 5xx, timeouts and connection errors count against
        # it; a 4xx (even 429) or 3xx means the host is up and answering.
        healthy = status is not None and status < 500
        await rt.breakers.report(target.breaker_key, healthy, probe=admission.probe)
        details = _details(result, target)
        if status is not None and 200 <= status < 300:
            self.metrics.delivered(label, "success")
            return {"status": status, "latency_ms": result.latency_ms, "webhook_id": msg_id}
        if status == 410:
            self.metrics.delivered(label, "gone")
            if endpoint is None:
                raise DeliveryDiscarded("the receiver answered 410 Gone", details)
            await rt.endpoints.disable(endpoint.name, "the receiver answered 410 Gone")
            reason = f"the receiver answered 410 Gone; endpoint {endpoint.name!r} disabled"
            raise DeliveryDiscarded(reason, details)
        after = parse_retry_after(result.retry_after, self._clock.now())
        if status in (429, 503) and after is not None:
            self.metrics.delivered(label, "retry")
            reason = f"HTTP {status}; Retry-After {after.total_seconds():g}s"
            raise DeliveryRetry(after, reason, details)
        self.metrics.delivered(label, "retry")
        raise DeliveryFailed(_describe(result), details)


def _details(result: HTTPResult, target: Target) -> JSONObject:
    details: JSONObject = {
        "status": result.status,
        "latency_ms": result.latency_ms,
        "destination": target.breaker_key,
        "response_excerpt": result.excerpt[:EXCERPT_IN_DETAILS],
    }
    if result.error is not None:
        details["error"] = result.error
        details["detail"] = result.detail
    return details


def _describe(result: HTTPResult) -> str:
    if result.status is None:
        return f"webhook {result.error}: {result.detail}"
    if 300 <= result.status < 400:
        return f"webhook answered HTTP {result.status} (redirects are not followed)"
    return f"webhook answered HTTP {result.status}"
