"""``/health`` (the process is alive), ``/ready`` (the backend answers and its migrations are
current) and ``/metrics`` (Prometheus text). All three are open: no token needed.

Who calls it: load balancers, Kubernetes probes, Prometheus, ``conveyor up``'s own check.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request
from fastapi.responses import Response

from conveyor.api.jobs import json_response
from conveyor.api.schemas import HealthOut, ReadyOut
from conveyor.api.service import JobsService
from conveyor.api.webhooks import refresh_breaker_metrics
from conveyor.errors import ConveyorError
from conveyor.observability.metrics import CONTENT_TYPE, ConveyorMetrics

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthOut)
async def health() -> Response:
    """200 while the process serves requests."""
    return json_response({"status": "ok"})


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready, with the reason"}},
)
async def ready(request: Request) -> Response:
    """200 when the backend is reachable and its schema is current; else 503 and why."""
    svc: JobsService = request.app.state.service
    body: dict[str, object] = {"status": "ready", "backend": svc.backend.url}
    try:
        status = await svc.backend.migration_status()
    except ConveyorError as exc:
        body.update(status="unavailable", reason=f"backend unreachable: {exc}")
        return json_response(body, 503)
    body.update(migrations_current=status.current, migrations_latest=status.latest)
    if not status.up_to_date:
        body.update(
            status="unavailable",
            reason=f"migrations not current: at {status.current}, latest {status.latest} "
            "(run `conveyor migrate`)",
        )
        return json_response(body, 503)
    return json_response(body)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process, with queue depths read from the backend."""
    svc: JobsService = request.app.state.service
    registry: ConveyorMetrics = request.app.state.metrics
    # On backend trouble serve the last known depths; /ready reports the trouble.
    with contextlib.suppress(ConveyorError):
        await registry.refresh_queue_depth(svc.backend)
        await refresh_breaker_metrics(request)
    return Response(registry.render(), media_type=CONTENT_TYPE)
