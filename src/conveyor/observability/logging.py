"""Structured logs (structlog): JSON lines when stderr is not a terminal, a readable console
when it is (``settings.log_format``: auto | json | console), and one log line per job state
change, fed by the ``EventBus``.

Who calls it: the CLI (``configure_logging`` once at startup), the API factory and the worker
(``log_job_events(bus)``). Request ids reach API log lines through
``structlog.contextvars`` (bound by the API's request-id middleware).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TextIO

import structlog

from conveyor.events import (
    Event,
    EventBus,
    JobCancelled,
    JobClaimed,
    JobCompleted,
    JobEnqueued,
    JobFailed,
    JobReleased,
    JobsRescued,
    JobTimedOut,
    LeaseLostEvent,
    WorkerStarted,
    WorkerStopped,
)

LOG_FORMATS = ("auto", "json", "console")


class _LineSink:
    """Where structlog's own lines go: the current ``configure_logging`` handler's stream,
    under that handler's lock (so they never interleave with stdlib records). Loggers cached
    on first use keep this object, so a later ``configure_logging`` still redirects them."""

    handler: logging.StreamHandler[TextIO] | None = None

    def msg(self, message: str) -> None:
        handler = self.handler
        if handler is None:  # configure_logging was undone (tests reset the root handlers)
            sys.stderr.write(message + "\n")
            return
        with handler.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            handler.stream.write(message + "\n")
            handler.stream.flush()

    log = debug = info = warn = warning = error = err = critical = exception = fatal = msg


_SINK = _LineSink()


def configure_logging(
    log_format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard ``logging`` module to ``stream`` (stderr) in one format.

    structlog's lines skip the stdlib machinery (no ``LogRecord``, no caller lookup): they are
    filtered by level before any processor runs, rendered once and written straight to the
    stream. Stdlib records (uvicorn, libraries) are rendered by the same renderer."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    out = stream or sys.stderr
    use_console = log_format == "console" or (log_format == "auto" and out.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=lambda *_: _SINK,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    _SINK.handler = handler
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; make its loggers go through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


_EVENT_NAMES: dict[type[Event], str] = {
    JobEnqueued: "job.enqueued",
    JobClaimed: "job.claimed",
    JobCompleted: "job.completed",
    JobFailed: "job.failed",
    JobCancelled: "job.cancelled",
    JobReleased: "job.released",
    JobTimedOut: "job.timed_out",
    LeaseLostEvent: "job.lease_lost",
    JobsRescued: "jobs.rescued",
    WorkerStarted: "worker.started",
    WorkerStopped: "worker.stopped",
}


_SLOTS: dict[type[Event], tuple[str, ...]] = {}


def _slots(cls: type[Event]) -> tuple[str, ...]:
    """The event type's field names, subclass fields first (computed once per type)."""
    names = _SLOTS.get(cls)
    if names is None:
        names = tuple(n for c in cls.__mro__ for n in getattr(c, "__slots__", ()))
        _SLOTS[cls] = names
    return names


def _fields(event: Event) -> dict[str, object]:
    """The event's own fields, durations in seconds, ready for a log line."""
    out: dict[str, object] = {}
    for name in _slots(type(event)):
        value = getattr(event, name)
        if isinstance(value, timedelta):
            out[f"{name}_seconds"] = round(value.total_seconds(), 6)
        elif isinstance(value, tuple):
            out[name] = list(value)
        else:
            out[name] = value
    return out


def log_job_events(bus: EventBus, logger_name: str = "conveyor") -> Callable[[], None]:
    """Subscribe a logger to ``bus``: one line per state change (job_id, queue, kind, attempt
    and the event's details). Returns the unsubscribe function."""
    log = structlog.get_logger(logger_name)

    def on_event(event: Event) -> None:
        name = _EVENT_NAMES.get(type(event))
        if name is None:  # ActiveJobs and other gauges: too chatty for a log line
            return
        fields = _fields(event)
        warn = (isinstance(event, JobFailed) and event.final) or isinstance(
            event, (LeaseLostEvent, JobTimedOut)
        )
        (log.warning if warn else log.info)(name, **fields)

    return bus.subscribe(on_event)
