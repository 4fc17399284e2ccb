"""``/webhooks``: named webhook endpoints (create, list, show, update, rotate the secret,
delete) and the circuit breakers of their destinations.

Who calls it: operators (curl, ``conveyor webhooks ...``), the dashboard. Endpoint management
needs the ``admin`` scope; reading breakers needs ``jobs:read``. A signing secret appears in
a response exactly twice in its life: in the 201 of its creation and in the answer of the
rotation that made it. Stored through the backend's ``RecordStore``, so every API and
worker process sees the same endpoints and breakers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from conveyor.api.auth import Scope, require
from conveyor.api.jobs import ERRORS, Responses, json_response
from conveyor.api.problems import ApiProblem, Problem
from conveyor.backend import RecordStore
from conveyor.handlers.webhook.breaker import BreakerConfig, CircuitBreakers
from conveyor.handlers.webhook.endpoints import (
    DEFAULT_ROTATION_OVERLAP,
    Endpoint,
    EndpointError,
    EndpointExists,
    EndpointNotFound,
    EndpointStore,
)
from conveyor.handlers.webhook.metrics import WebhookMetrics
from conveyor.jobs import JSONObject

router = APIRouter(tags=["webhooks"])

NOT_FOUND: Responses = {404: {"description": "No such endpoint"}}
EndpointName = Annotated[str, Path(min_length=1, max_length=100)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2048)
    secret: str | None = Field(default=None, description="whsec_...; generated when absent")
    rate_limit: float | None = Field(default=None, gt=0, description="deliveries per second")


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    rate_limit: float | None = Field(default=None, gt=0)
    disabled: bool | None = None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: float = Field(
        default=DEFAULT_ROTATION_OVERLAP.total_seconds(), ge=0, le=30 * 86400
    )
    secret: str | None = None


class WebhookAdmin:
    """What the routes share: the endpoint store and a breaker reader over the backend."""

    def __init__(self, records: RecordStore, metrics: WebhookMetrics | None = None) -> None:
        self.endpoints = EndpointStore(records)
        self.breakers = CircuitBreakers(records, BreakerConfig())
        self.metrics = metrics


async def admin(request: Request) -> WebhookAdmin:
    state = request.app.state
    existing = getattr(state, "webhooks", None)
    if isinstance(existing, WebhookAdmin):
        return existing
    backend = state.service.backend
    if not isinstance(backend, RecordStore):
        raise ApiProblem(
            Problem(501, "records-unsupported", "this backend cannot store webhook endpoints")
        )
    created = WebhookAdmin(backend, getattr(state, "webhook_metrics", None))
    state.webhooks = created
    return created


Admin = Annotated[WebhookAdmin, Depends(admin)]


def _public(endpoint: Endpoint) -> JSONObject:
    return endpoint.public_json(datetime.now(UTC))


def _not_found(name: str) -> ApiProblem:
    return ApiProblem(Problem(404, "endpoint-not-found", str(EndpointNotFound(name))))


def _invalid(exc: Exception) -> ApiProblem:
    return ApiProblem(Problem(422, "invalid-endpoint", str(exc)))


@router.post(
    "/webhooks/endpoints",
    status_code=201,
    responses={**ERRORS, 409: {"description": "Name taken"}},
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def create_endpoint(body: EndpointIn, adm: Admin) -> Response:
    """Register an endpoint. The response carries its signing ``secret``: this is the only
    time it is shown."""
    try:
        endpoint, secret = await adm.endpoints.create(
            body.name, body.url, body.secret, body.rate_limit
        )
    except EndpointExists as exc:
        raise ApiProblem(Problem(409, "endpoint-exists", str(exc))) from None
    except EndpointError as exc:
        raise _invalid(exc) from None
    headers = {"Location": f"/webhooks/endpoints/{endpoint.name}"}
    return json_response({**_public(endpoint), "secret": secret}, 201, headers)


@router.get("/webhooks/endpoints", responses=ERRORS, dependencies=[Depends(require(Scope.ADMIN))])
async def list_endpoints(adm: Admin) -> Response:
    """Every endpoint, by name (no secrets)."""
    return json_response([_public(e) for e in await adm.endpoints.list()])


@router.get(
    "/webhooks/endpoints/{name}",
    responses={**ERRORS, **NOT_FOUND},
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def get_endpoint(name: EndpointName, adm: Admin) -> Response:
    endpoint = await adm.endpoints.get(name)
    if endpoint is None:
        raise _not_found(name)
    return json_response(_public(endpoint))


@router.patch(
    "/webhooks/endpoints/{name}",
    responses={**ERRORS, **NOT_FOUND},
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def patch_endpoint(name: EndpointName, body: EndpointPatch, adm: Admin) -> Response:
    """Change ``url``, set or clear (``null``) ``rate_limit``, disable or enable."""
    try:
        endpoint = await adm.endpoints.update(
            name,
            url=body.url,
            rate_limit=body.rate_limit,
            clear_rate_limit="rate_limit" in body.model_fields_set and body.rate_limit is None,
            disabled=body.disabled,
            disabled_reason="disabled over the API" if body.disabled else None,
        )
    except EndpointNotFound:
        raise _not_found(name) from None
    except EndpointError as exc:
        raise _invalid(exc) from None
    return json_response(_public(endpoint))


@router.post(
    "/webhooks/endpoints/{name}/rotate",
    responses={**ERRORS, **NOT_FOUND},
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def rotate_secret(name: EndpointName, adm: Admin, body: RotateIn | None = None) -> Response:
    """A new signing secret (shown once); the previous one keeps signing for the overlap."""
    body = body or RotateIn()
    try:
        endpoint, secret = await adm.endpoints.rotate(
            name, timedelta(seconds=body.overlap_seconds), body.secret
        )
    except EndpointNotFound:
        raise _not_found(name) from None
    except EndpointError as exc:
        raise _invalid(exc) from None
    return json_response({**_public(endpoint), "secret": secret})


@router.delete(
    "/webhooks/endpoints/{name}",
    status_code=204,
    responses={**ERRORS, **NOT_FOUND},
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def delete_endpoint(name: EndpointName, adm: Admin) -> Response:
    if not await adm.endpoints.delete(name):
        raise _not_found(name)
    return Response(status_code=204)


@router.get(
    "/webhooks/breakers", responses=ERRORS, dependencies=[Depends(require(Scope.JOBS_READ))]
)
async def list_breakers(adm: Admin) -> Response:
    """Circuit breaker state per destination (``host:port``), shared by all workers."""
    snapshots = await adm.breakers.snapshots()
    if adm.metrics is not None:
        adm.metrics.refresh_breakers(snapshots)
    return json_response(
        [
            {
                "host": s.host,
                "state": s.state.value,
                "opened_at": None if s.opened_at is None else s.opened_at.isoformat(),
                "reopens": s.reopens,
                "updated_at": None if s.updated_at is None else s.updated_at.isoformat(),
            }
            for s in snapshots
        ]
    )


async def refresh_breaker_metrics(request: Request) -> None:
    """Before rendering ``/metrics``: copy the shared breaker states into the webhook gauge
    (needs ``app.state.webhook_metrics``; a no-op without it or without records)."""
    metrics = getattr(request.app.state, "webhook_metrics", None)
    if not isinstance(metrics, WebhookMetrics):
        return
    try:
        adm = await admin(request)
    except ApiProblem:
        return
    metrics.refresh_breakers(await adm.breakers.snapshots())
