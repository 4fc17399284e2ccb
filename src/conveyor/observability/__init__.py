"""Observability: Prometheus metrics and structured logs, fed by the typed ``EventBus``.

Used by the API (``/metrics``, request logs) and by workers (``start_metrics_server``). Nothing
here imports FastAPI, so a standalone worker can expose metrics without the web stack.
"""

from __future__ import annotations

from conveyor.observability.logging import configure_logging, log_job_events
from conveyor.observability.metrics import (
    ConveyorMetrics,
    install_metrics,
    start_metrics_server,
)

__all__ = [
    "ConveyorMetrics",
    "configure_logging",
    "install_metrics",
    "log_job_events",
    "start_metrics_server",
]
