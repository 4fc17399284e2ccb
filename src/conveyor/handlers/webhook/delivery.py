"""The pure parts of one webhook attempt: the payload's schema, the signals a delivery raises
(each carrying the attempt's ``details`` for the dead-letter queue), ``Retry-After`` parsing,
and the default retry schedule.

Called by ``conveyor.handlers.webhook.handler`` (and ``client`` for the defaults).
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta
from typing import Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from conveyor.handler import Discard, HandlerOptions, Retry
from conveyor.handlers.webhook.signing import HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP
from conveyor.jobs import JSONObject
from conveyor.retry import RetryPolicy

WEBHOOK_KIND = "webhook"
WEBHOOK_QUEUE = "webhooks"
WEBHOOK_MAX_ATTEMPTS = 17
WEBHOOK_RETRY_POLICY = RetryPolicy(
    base=timedelta(seconds=10), factor=2.0, cap=timedelta(hours=4), jitter=0.2
)
"""10 s, 20 s, 40 s ... capped at 4 h, jittered down by at most 20 %: with 17 attempts the
16 waits add up to 25.7 h at their ceiling (about 23 h on average): "about a day"."""
WEBHOOK_TIMEOUT = timedelta(minutes=2)  # the job's timeout; the HTTP timeouts are shorter
MAX_RETRY_AFTER = timedelta(hours=24)
EXCERPT_IN_DETAILS = 1024  # characters of the response kept per attempt in the job's errors

RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "accept-encoding",
        HEADER_ID,
        HEADER_TIMESTAMP,
        HEADER_SIGNATURE,
    }
)
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$")


def webhook_options(
    *,
    queue: str = WEBHOOK_QUEUE,
    max_attempts: int = WEBHOOK_MAX_ATTEMPTS,
    retry_policy: RetryPolicy = WEBHOOK_RETRY_POLICY,
    timeout: timedelta = WEBHOOK_TIMEOUT,
) -> HandlerOptions:
    """The ``HandlerOptions`` of the ``webhook`` kind (register them with the handler)."""
    return HandlerOptions(
        queue=queue, max_attempts=max_attempts, retry_policy=retry_policy, timeout=timeout
    )


class WebhookPayload(BaseModel):
    """``{"endpoint": name, "body": ..., "headers"?: {...}, "id"?: delivery id}``, or ``"url"``
    instead of ``"endpoint"`` for an unsigned one-off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str | None = Field(default=None, min_length=1, max_length=100)
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    body: JsonValue = None
    headers: dict[str, str] = Field(default_factory=dict)
    id: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.endpoint is None) == (self.url is None):
            raise ValueError("give exactly one of 'endpoint' and 'url'")
        for name, value in self.headers.items():
            if not TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not valid")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by Conveyor and cannot be given")
            if "\r" in value or "\n" in value or len(value) > 4096:
                raise ValueError(f"header {name!r} has an invalid value")
        return self

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body)


def parse_payload(payload: JSONObject) -> WebhookPayload:
    """Validate a job's payload; a bad one can never succeed, so it is discarded."""
    try:
        return WebhookPayload.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()
        )
        raise DeliveryDiscarded(f"invalid webhook payload: {problems}", {}) from None


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as delay-seconds or an HTTP date; None when absent or unreadable.
    Clamped to ``[0, MAX_RETRY_AFTER]``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            at = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        delay = at - now
    return min(max(delay, timedelta(0)), MAX_RETRY_AFTER)


class DeliveryFailed(Exception):
    """A retryable failed attempt (5xx, other 4xx, 3xx, timeout, connection or DNS error).
    ``details`` (status, latency, excerpt ...) goes into the attempt's ``AttemptError``."""

    def __init__(self, message: str, details: JSONObject) -> None:
        super().__init__(message)
        self.details = details


class DeliveryRetry(Retry):
    """429/503 with ``Retry-After``: retry when the receiver asked (the attempt counts)."""

    def __init__(self, after: timedelta, reason: str, details: JSONObject) -> None:
        super().__init__(after, reason)
        self.details = details


class DeliveryDiscarded(Discard):
    """No retry can help (410 Gone, a refused destination, an invalid payload)."""

    def __init__(self, reason: str, details: JSONObject) -> None:
        super().__init__(reason)
        self.details = details
