"""The default webhook retry schedule spans about a day; Retry-After parsing; rate limits."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

from conveyor.handlers.webhook.delivery import (
    MAX_RETRY_AFTER,
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_RETRY_POLICY,
    parse_retry_after,
)
from conveyor.handlers.webhook.ratelimit import RateLimits


def test_default_schedule_spans_about_a_day() -> None:
    waits = [WEBHOOK_RETRY_POLICY.ceiling(n) for n in range(1, WEBHOOK_MAX_ATTEMPTS)]
    ceiling = sum(waits, timedelta(0))
    floor = ceiling * (1 - WEBHOOK_RETRY_POLICY.jitter)
    assert waits[0] == timedelta(seconds=10) and max(waits) == timedelta(hours=4)
    assert timedelta(hours=18) < floor and ceiling < timedelta(hours=30)


def test_retry_after_forms() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now) == timedelta(seconds=120)
    later = email.utils.format_datetime(now + timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(later, now) == timedelta(minutes=5)
    past = email.utils.format_datetime(now - timedelta(minutes=5), usegmt=True)
    assert parse_retry_after(past, now) == timedelta(0)
    assert parse_retry_after("99999999", now) == MAX_RETRY_AFTER
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_rate_limit_token_bucket() -> None:
    limits = RateLimits()
    assert limits.take("ep", 2.0, now=0.0) == timedelta(0)
    assert limits.take("ep", 2.0, now=0.0) == timedelta(0)  # burst of 2
    wait = limits.take("ep", 2.0, now=0.0)
    assert timedelta(seconds=0.49) < wait <= timedelta(seconds=0.5)
    assert limits.take("ep", 2.0, now=0.5) == timedelta(0)
    assert limits.take("other", 2.0, now=0.0) == timedelta(0)
