"""Retry policy: exponential backoff with full jitter and a cap. Pure; called by the worker
when an attempt fails, and by handlers (webhooks) that want their own schedule."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before attempt ``n + 1`` after attempt ``n`` failed:
    ``min(cap, base * factor ** (n - 1))``, then jittered into ``[d * (1 - jitter), d]``.

    ``jitter=1.0`` is "full jitter" (AWS architecture blog), which spreads a thundering herd
    best; the default 0.5 keeps the schedule predictable to within a factor of two.
    """

    base: timedelta = timedelta(seconds=1)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("need 0 < base <= cap")
        if self.factor < 1.0:
            raise ValueError("factor must be >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")

    def ceiling(self, attempt: int) -> timedelta:
        """The un-jittered delay after failed attempt number ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        seconds = self.base.total_seconds()
        cap = self.cap.total_seconds()
        # Avoid float overflow for large attempt numbers: stop multiplying at the cap.
        for _ in range(exponent):
            seconds *= self.factor
            if seconds >= cap:
                return self.cap
        return timedelta(seconds=min(seconds, cap))

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        ceiling = self.ceiling(attempt).total_seconds()
        low = ceiling * (1.0 - self.jitter)
        r = (rng or random).random()
        return timedelta(seconds=low + (ceiling - low) * r)


DEFAULT_RETRY_POLICY = RetryPolicy()
