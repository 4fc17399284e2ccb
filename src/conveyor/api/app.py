"""The FastAPI application factory.

``create_app(backend_or_url, settings=..., registry_kinds=..., tokens_required=...)`` wires the
routers, the problem-details handlers, the body limit, request ids, metrics and job-event
logs. Given a URL it opens (and closes) the backend in the app's lifespan; given a ``Backend``
it uses it as is and leaves its lifecycle to the caller (``conveyor up`` shares one backend
between the API and the worker; tests share one with their assertions).

Who calls it: ``conveyor api`` / ``conveyor up`` (through uvicorn), tests (through
``httpx.ASGITransport``), and the dashboard, which mounts its pages on the same app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from conveyor import __version__
from conveyor.api import dlq, health, home, jobs, queues, stream, webhooks, workers
from conveyor.api.auth import Authenticator
from conveyor.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from conveyor.api.problems import index_methods, install_problem_handlers, problem_openapi
from conveyor.api.service import JobsService
from conveyor.backend import Backend
from conveyor.backends import open_backend
from conveyor.events import EventBus
from conveyor.handler import HandlerOptions
from conveyor.handlers.webhook.metrics import WebhookMetrics
from conveyor.observability.logging import log_job_events
from conveyor.observability.metrics import ConveyorMetrics, install_metrics
from conveyor.settings import Settings

DESCRIPTION = """Durable jobs over HTTP: enqueue, watch, cancel, requeue; the dead-letter queue;
queues and workers. Errors are RFC 9457 problem details. Authenticate with
`Authorization: Bearer <token>` (tokens from `conveyor token create`)."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    poll_interval: float = 0.5  # seconds between backend reads in an SSE stream
    heartbeat_interval: float = 15.0


def create_app(
    backend: Backend | str,
    *,
    settings: Settings | None = None,
    registry_kinds: Iterable[str] = (),
    kind_defaults: Mapping[str, HandlerOptions] | None = None,
    tokens_required: bool | None = None,
    bus: EventBus | None = None,
    metrics: ConveyorMetrics | None = None,
    stream_settings: StreamSettings | None = None,
    token_cache_seconds: float = 2.0,
    access_log: bool = False,
    log_events: bool = True,
    owns_backend: bool | None = None,
) -> FastAPI:
    """Build the API. See the module docstring for who owns the backend's lifecycle.

    ``registry_kinds``: kinds known locally (the app's tasks), accepted by ``POST /jobs`` even
    when no worker has published them. ``kind_defaults``: registered options per kind (queue,
    attempts, priority, timeout) applied where a request leaves them out; their kinds count
    as known too. ``tokens_required``: True/False forces it; None
    requires tokens once any live token exists (see ``conveyor.api.auth``). ``access_log``:
    one structured log line per request (with its request id). ``log_events``: log job
    events from ``bus`` while the app runs (off when the caller already does).
    ``owns_backend``: open and close the backend in the lifespan (default: when given a URL).
    """
    settings = settings or Settings()
    owned = isinstance(backend, str) if owns_backend is None else owns_backend
    store = open_backend(backend) if isinstance(backend, str) else backend
    bus = bus or EventBus()
    if metrics is None:
        metrics = install_metrics(bus)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        unsubscribe = log_job_events(bus, "conveyor.api") if log_events else None
        if owned:
            await store.open()
        try:
            yield
        finally:
            if unsubscribe is not None:
                unsubscribe()
            if owned:
                await store.close()

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = JobsService(
        store,
        bus=bus,
        max_payload_bytes=settings.max_payload_bytes,
        registry_kinds=registry_kinds,
        kind_defaults=kind_defaults,
    )
    app.state.auth = Authenticator(
        store, tokens_required=tokens_required, cache_ttl=token_cache_seconds
    )
    app.state.metrics = metrics
    app.state.bus = bus
    app.state.stream_settings = stream_settings or StreamSettings()
    # Breaker states of the shared webhook circuit breakers, refreshed on every scrape.
    app.state.webhook_metrics = WebhookMetrics(metrics.registry)
    routers = [m.router for m in (jobs, stream, dlq, queues, workers, webhooks, health, home)]
    for router in routers:
        app.include_router(router)
    index_methods(app, routers)
    install_problem_handlers(app)
    app.openapi = problem_openapi(app)  # type: ignore[method-assign]
    # Outermost first: request id and metrics see the 413s the body limit sends.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, access_log=access_log)
    return app
