"""Typed events: every notable step of a job's life or a worker's, emitted once and consumed
by logs, metrics and tests alike (tests wait on events instead of sleeping).

Emitters: the worker runtime (claims, outcomes, leases), the app/API (enqueues). Consumers
subscribe to an ``EventBus``; a consumer that raises is logged and never breaks the emitter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from conveyor.jobs import JobId, WorkerId

log = logging.getLogger("conveyor.events")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events."""


@dataclass(frozen=True, slots=True)
class JobEvent(Event):
    job_id: JobId
    queue: str
    kind: str
    attempt: int


@dataclass(frozen=True, slots=True)
class JobEnqueued(JobEvent):
    created: bool = True


@dataclass(frozen=True, slots=True)
class JobClaimed(JobEvent):
    worker: str = ""
    pickup: timedelta = timedelta(0)  # run_at (or enqueue) -> claim


@dataclass(frozen=True, slots=True)
class JobCompleted(JobEvent):
    duration: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class JobFailed(JobEvent):
    """An attempt failed. ``final`` when the job went to the dead-letter queue."""

    duration: timedelta = timedelta(0)
    error_type: str = ""
    message: str = ""
    retry_in: timedelta | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class JobCancelled(JobEvent):
    pass


@dataclass(frozen=True, slots=True)
class JobReleased(JobEvent):
    pass


@dataclass(frozen=True, slots=True)
class JobTimedOut(JobEvent):
    timeout: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class LeaseLostEvent(JobEvent):
    """The worker found it no longer holds the job's lease; its outcome was not written."""


@dataclass(frozen=True, slots=True)
class JobsRescued(Event):
    requeued: int
    failed: int
    cancelled: int


@dataclass(frozen=True, slots=True)
class WorkerStarted(Event):
    worker: WorkerId
    queues: tuple[str, ...]
    concurrency: int


@dataclass(frozen=True, slots=True)
class WorkerStopped(Event):
    worker: WorkerId
    released: int


@dataclass(frozen=True, slots=True)
class ActiveJobs(Event):
    worker: WorkerId
    running: int


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out. Subscribers must be quick (count, log, set an asyncio.Event)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken consumer must never break the worker
                log.exception("event subscriber %r failed on %r", subscriber, event)
