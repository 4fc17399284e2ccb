"""Per-endpoint rate limits (``rate_limit`` deliveries per second), enforced per worker
process with a token bucket. Called by the webhook handler before each attempt; a delivery
over the limit is deferred (``Retry(charge=False)``), never dropped.

The limit is per process, not global: with N worker processes an endpoint may see up to N
times its rate. (A shared bucket would cost a compare-and-set per delivery.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float | None = None) -> timedelta:
        """Take one token: zero when granted, else how long until one is due (not taken)."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return timedelta(0)
        return timedelta(seconds=(1.0 - self.tokens) / self.rate)


class RateLimits:
    """One bucket per endpoint name; a changed rate replaces the bucket."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, endpoint: str, rate: float, now: float | None = None) -> timedelta:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(endpoint)
        if bucket is None or bucket.rate != rate:
            bucket = TokenBucket(rate=rate, burst=max(1.0, rate), stamp=now)
            self._buckets[endpoint] = bucket
        return bucket.take(now)
