"""The one place where errors become HTTP: RFC 9457 problem details (``application/problem+json``)
for every 4xx and 5xx the API returns.

Who calls it: ``conveyor.api.app.create_app`` installs ``install_problem_handlers`` and
``problem_openapi``; the body-limit middleware and the auth dependency raise the exceptions
mapped here. Routers never build error responses themselves: they raise ``conveyor.errors``
types (or ``ApiProblem`` for HTTP-only conditions) and this module answers.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from conveyor import errors

log = logging.getLogger("conveyor.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:conveyor:problem:"


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    slug: str
    detail: str
    title: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self, instance: str | None = None) -> dict[str, object]:
        body: dict[str, object] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> ProblemResponse:
        return ProblemResponse(
            orjson.dumps(self.to_json(instance)), status_code=self.status, headers=self.headers
        )


class ApiProblem(Exception):
    """An HTTP-only condition (bad id, body too large, conflicting fields): raise it anywhere
    under a request and the client gets this problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in; FastAPI re-raises HTTPExceptions from body reading."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the limit of {limit} bytes")
        self.limit = limit


def body_too_large(limit: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        f"request body is over the limit of {limit} bytes",
        extra={"limit": limit},
    )


def problem_for(exc: errors.ConveyorError) -> Problem:
    """Map a ``conveyor.errors`` exception to its problem. The whole table lives here."""
    detail = str(exc)
    if isinstance(exc, errors.QueueFull):
        seconds = max(1, math.ceil(exc.retry_after.total_seconds()))
        return Problem(
            429,
            "queue-full",
            detail,
            extra={"queue": exc.queue, "max_depth": exc.max_depth, "retry_after": seconds},
            headers={"Retry-After": str(seconds)},
        )
    if isinstance(exc, errors.PayloadTooLarge):
        return Problem(413, "payload-too-large", detail, extra={"limit": exc.limit})
    if isinstance(exc, errors.InvalidPayload):
        return Problem(422, "invalid-payload", detail)
    if isinstance(exc, errors.UnknownKind):
        return Problem(
            422, "unknown-kind", detail, extra={"kind": exc.kind, "known_kinds": exc.known}
        )
    if isinstance(exc, errors.JobNotFound):
        return Problem(404, "job-not-found", detail, extra={"job_id": exc.job_id})
    if isinstance(exc, errors.InvalidTransition):
        return Problem(
            409,
            "invalid-transition",
            detail,
            extra={"job_id": exc.job_id, "job_status": exc.status},
        )
    if isinstance(exc, errors.Unauthenticated):
        return Problem(
            401,
            "unauthenticated",
            detail or "a bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="conveyor"'},
        )
    if isinstance(exc, errors.Forbidden):
        return Problem(403, "forbidden", detail, extra={"required_scope": exc.scope})
    if isinstance(exc, errors.BackendUnavailable):
        return Problem(503, "backend-unavailable", detail, headers={"Retry-After": "1"})
    if isinstance(exc, errors.ConfigurationError):
        return Problem(422, "invalid-request", detail)
    # LeaseLost, DuplicateJob, MigrationError, other BackendErrors: server-side trouble.
    return Problem(500, "internal", "the server could not complete the request")


def _field_errors(exc: RequestValidationError) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for err in exc.errors():
        loc: Sequence[object] = err.get("loc", ())
        out.append(
            {
                "loc": [str(part) for part in loc],
                "field": ".".join(str(p) for p in loc if p not in ("body", "query", "path")),
                "message": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def validation_problem(exc: RequestValidationError) -> Problem:
    fields = _field_errors(exc)
    if any(f["type"] == "json_invalid" for f in fields):
        return Problem(400, "malformed-json", "the request body is not valid JSON")
    summary = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields[:5])
    return Problem(422, "validation-error", summary or "invalid request", extra={"errors": fields})


def _http_problem(exc: StarletteHTTPException) -> Problem:
    status = exc.status_code
    slug = {
        400: "bad-request",
        404: "not-found",
        405: "method-not-allowed",
        413: "body-too-large",
    }.get(status, "http-error")
    detail = str(exc.detail)
    if status == 404 and detail == "Not Found":
        detail = "no such route"
    elif status == 405 and detail == "Method Not Allowed":
        detail = "this route does not accept that method"
    headers = dict(exc.headers or {})
    return Problem(status, slug, detail, headers=headers)


RouteIndex = list[tuple[re.Pattern[str], frozenset[str], bool]]


def index_methods(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Remember which methods each path template serves, for the ``Allow`` header of 405s
    (Starlette names only the first matching route's methods)."""
    index: RouteIndex = []
    for router in routers:
        for route in router.routes:
            methods = getattr(route, "methods", None)
            regex = getattr(route, "path_regex", None)
            path = str(getattr(route, "path", ""))
            if methods and regex is not None:
                index.append((regex, frozenset(methods), "{" not in path))
    app.state.route_methods = index


def allowed_methods(request: Request) -> set[str]:
    """Methods of the routes matching the path; a literal path (``/jobs/batch``) hides the
    templates it also happens to match (``/jobs/{job_id}``)."""
    index: RouteIndex = getattr(request.app.state, "route_methods", [])
    path = request.url.path
    matches = [(methods, static) for regex, methods, static in index if regex.match(path)]
    if any(static for _, static in matches):
        matches = [(methods, static) for methods, static in matches if static]
    return {m for methods, _ in matches for m in methods}


def install_problem_handlers(app: FastAPI) -> None:
    """Register the exception handlers that turn every error into a problem response."""

    async def on_conveyor(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.ConveyorError)
        problem = problem_for(exc)
        if problem.status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return problem.response(request.url.path)

    async def on_api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return exc.problem.response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc).response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        problem = _http_problem(exc)
        if problem.status == 405:
            allow = ", ".join(sorted(allowed_methods(request)))
            problem = replace(problem, headers={**problem.headers, "Allow": allow})
        return problem.response(request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        problem = Problem(500, "internal", "the server could not complete the request")
        return problem.response(request.url.path)

    app.add_exception_handler(errors.ConveyorError, on_conveyor)
    app.add_exception_handler(ApiProblem, on_api_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


PROBLEM_SCHEMA: dict[str, object] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, object]]:
    """An ``app.openapi`` replacement: every documented 4xx/5xx response is a Problem served
    as ``application/problem+json`` (FastAPI's default 422 shape is not what we send)."""

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for schema_name in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(schema_name, None)
        ref = {"$ref": "#/components/schemas/Problem"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for code, response in operation.get("responses", {}).items():
                    if code[0] in "45":
                        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": ref}}
        app.openapi_schema = schema
        return schema

    return openapi
