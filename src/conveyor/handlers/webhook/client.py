"""Sending webhooks from Python: ``WebhookClient(app).send(endpoint=..., body=...)`` enqueues a
``webhook`` job (the worker delivers it), and ``install_webhooks(app)`` registers the kind in
the app's registry so that the app's workers can run it.

Called by user code (through ``app.webhooks`` once the app exposes it) and by ``conveyor up``
/ ``conveyor worker`` when they build a worker's registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, TypedDict, Unpack

from pydantic import ValidationError

from conveyor.backend import RecordStore
from conveyor.errors import ConfigurationError, InvalidPayload
from conveyor.handlers.webhook.delivery import (
    WEBHOOK_KIND,
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_QUEUE,
    WebhookPayload,
    webhook_options,
)
from conveyor.handlers.webhook.handler import WebhookHandler, WebhookSettings
from conveyor.handlers.webhook.metrics import WebhookMetrics
from conveyor.jobs import DEFAULT_PRIORITY, Job, JSONObject, JSONValue, NewJob

if TYPE_CHECKING:
    from conveyor.app import Conveyor


def webhook_job(
    *,
    endpoint: str | None = None,
    url: str | None = None,
    body: JSONValue = None,
    headers: Mapping[str, str] | None = None,
    delivery_id: str | None = None,
    queue: str = WEBHOOK_QUEUE,
    max_attempts: int = WEBHOOK_MAX_ATTEMPTS,
    delay: timedelta | None = None,
    priority: int = DEFAULT_PRIORITY,
    idempotency_key: str | None = None,
) -> NewJob:
    """The ``NewJob`` of one delivery; raises ``InvalidPayload`` for a bad one."""
    payload: JSONObject = {"body": body}
    if endpoint is not None:
        payload["endpoint"] = endpoint
    if url is not None:
        payload["url"] = url
    if headers:
        payload["headers"] = dict(headers)
    if delivery_id is not None:
        payload["id"] = delivery_id
    try:
        WebhookPayload.model_validate(payload)
    except ValidationError as exc:
        raise InvalidPayload(f"invalid webhook: {exc.errors()[0]['msg']}") from None
    return NewJob(
        kind=WEBHOOK_KIND,
        payload=payload,
        queue=queue,
        max_attempts=max_attempts,
        delay=delay,
        priority=priority,
        idempotency_key=idempotency_key,
    )


class WebhookClient:
    """Enqueue webhook deliveries through a ``Conveyor`` app (sync and async)."""

    def __init__(
        self, app: Conveyor, *, queue: str = WEBHOOK_QUEUE, max_attempts: int = WEBHOOK_MAX_ATTEMPTS
    ) -> None:
        self._app = app
        self._queue = queue
        self._max_attempts = max_attempts

    def job(
        self,
        *,
        endpoint: str | None = None,
        url: str | None = None,
        body: JSONValue = None,
        headers: Mapping[str, str] | None = None,
        delivery_id: str | None = None,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> NewJob:
        """The ``NewJob`` of one delivery on this client's queue; raises ``InvalidPayload``."""
        return webhook_job(
            endpoint=endpoint,
            url=url,
            body=body,
            headers=headers,
            delivery_id=delivery_id,
            queue=self._queue,
            max_attempts=self._max_attempts,
            delay=delay,
            idempotency_key=idempotency_key,
        )

    def send(self, **delivery: Unpack[Delivery]) -> Job:
        """Enqueue one delivery to a named ``endpoint`` (signed) or a bare ``url``: the
        keyword arguments of ``job``."""
        return self._app.enqueue(self.job(**delivery))

    async def send_async(self, **delivery: Unpack[Delivery]) -> Job:
        return await self._app.enqueue_async(self.job(**delivery))


def webhook_handler(
    app: Conveyor,
    *,
    settings: WebhookSettings | None = None,
    metrics: WebhookMetrics | None = None,
) -> WebhookHandler:
    """The ``webhook`` kind's handler for ``app``: deliveries use the app's backend (on each
    loop, ``await app.backend()``) as their ``RecordStore``. ``Conveyor`` registers it
    lazily (``LazyHandler``), so a worker imports the HTTP stack on its first delivery only."""

    async def records() -> RecordStore:
        backend = await app.backend()
        if not isinstance(backend, RecordStore):
            raise ConfigurationError(f"{backend.url} cannot store webhook endpoints (records)")
        return backend

    return WebhookHandler(records, settings=settings, clock=app.clock, metrics=metrics)


class Delivery(TypedDict, total=False):
    """The keyword arguments of ``WebhookClient.send``."""

    endpoint: str | None
    url: str | None
    body: JSONValue
    headers: Mapping[str, str] | None
    delivery_id: str | None
    delay: timedelta | None
    idempotency_key: str | None


def install_webhooks(
    app: Conveyor,
    *,
    settings: WebhookSettings | None = None,
    metrics: WebhookMetrics | None = None,
    queue: str = WEBHOOK_QUEUE,
) -> WebhookHandler:
    """Register the ``webhook`` kind in ``app.registry`` with a handler built now (custom
    ``settings``/``metrics``); replaces the lazy registration every app starts with."""
    handler = webhook_handler(app, settings=settings, metrics=metrics)
    app.registry.register(WEBHOOK_KIND, handler, webhook_options(queue=queue))
    return handler
