"""Waits that a stop request cuts short. Every loop of the worker sleeps through these, so
that stopping never waits out a poll interval. Used throughout ``conveyor.worker``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")


def jittered(interval: timedelta, low: float = 0.5) -> float:
    """Seconds in ``[interval * low, interval]``: spreads many workers' polls apart."""
    seconds = interval.total_seconds()
    return seconds * (low + (1.0 - low) * random.random())


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; True when ``stop`` was set first (or already)."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def race_stop(awaitable: Awaitable[T], stop: asyncio.Event) -> T | None:
    """Await ``awaitable`` unless ``stop`` is set first (then it is cancelled; None)."""
    work = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    return work.result() if work.done() and not work.cancelled() else None
