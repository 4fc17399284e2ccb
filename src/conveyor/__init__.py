"""Conveyor: durable, fast, observable job execution.

The curated public API; ``__all__`` is sorted and a unit test keeps it so.
"""

from __future__ import annotations

from conveyor.app import Conveyor
from conveyor.backend import Backend, Capability
from conveyor.clock import FrozenClock, SystemClock
from conveyor.errors import (
    ConveyorError,
    InvalidPayload,
    JobNotFound,
    LeaseLost,
    QueueFull,
    UnknownKind,
)
from conveyor.handler import Discard, JobContext, Retry
from conveyor.jobs import Job, JobId, JobStatus, NewJob
from conveyor.retry import RetryPolicy
from conveyor.task import Task

__all__ = [
    "Backend",
    "Capability",
    "Conveyor",
    "ConveyorError",
    "Discard",
    "FrozenClock",
    "InvalidPayload",
    "Job",
    "JobContext",
    "JobId",
    "JobNotFound",
    "JobStatus",
    "LeaseLost",
    "NewJob",
    "QueueFull",
    "Retry",
    "RetryPolicy",
    "SystemClock",
    "Task",
    "UnknownKind",
]
__version__ = "0.1.0"
