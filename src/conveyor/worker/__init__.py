"""The worker runtime: claims jobs from a backend and runs their handlers (see
``conveyor.worker.runtime``). Started by ``conveyor worker``, ``conveyor up`` and
``conveyor.testing``."""

from __future__ import annotations

from conveyor.worker.config import WorkerConfig
from conveyor.worker.runtime import Worker

__all__ = ["Worker", "WorkerConfig"]
