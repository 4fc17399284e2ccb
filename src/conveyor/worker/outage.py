"""Riding out a backend outage: the worker's loops catch ``BackendUnavailable`` (the server
restarted, the network blinked), wait with capped exponential backoff, and carry on. Any
other exception still stops the worker loudly. Used by every loop in ``conveyor.worker``."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from conveyor.errors import BackendUnavailable

log = logging.getLogger("conveyor.worker")


class Backoff:
    """Consecutive-failure counter with jittered, capped exponential waits."""

    def __init__(
        self,
        base: timedelta = timedelta(milliseconds=100),
        cap: timedelta = timedelta(seconds=5),
    ) -> None:
        self._base = base.total_seconds()
        self._cap = cap.total_seconds()
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    async def wait(self, what: str, exc: BackendUnavailable) -> None:
        self.failures += 1
        delay = min(self._cap, self._base * 2 ** min(self.failures - 1, 16))
        delay *= 0.5 + random.random() / 2
        log.warning("%s: backend unavailable (%s); retrying in %.2fs", what, exc, delay)
        await asyncio.sleep(delay)
