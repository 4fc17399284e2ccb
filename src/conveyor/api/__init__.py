"""The HTTP API (FastAPI): jobs, the dead-letter queue, queues, workers, health, metrics.

``create_app`` builds it; ``conveyor api`` and ``conveyor up`` serve it with uvicorn.
"""

from __future__ import annotations

from conveyor.api.app import StreamSettings, create_app

__all__ = ["StreamSettings", "create_app"]
