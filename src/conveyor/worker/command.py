"""``conveyor worker`` without the command-line framework: what a worker process runs.

``conveyor worker`` and ``python -m conveyor.worker`` (each child of ``--processes N``) parse
their options here with argparse, from ``OPTIONS``; the typer command in
``conveyor.cli.worker`` declares the same options from the same table (for ``conveyor
worker --help``). A worker process so never imports typer, click or Rich: its memory
footprint matters (docs/performance.md, "Ninth pass"; docs/decisions.md D22).

This module installs the worker process's signal handlers: the first SIGTERM/SIGINT stops
the worker gracefully (``--grace``), a second one at once (jobs still released). The
database URL is ``--database-url``, else ``CONVEYOR_DATABASE_URL``, else the app's, else
``sqlite:///conveyor.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from conveyor.app import Conveyor
from conveyor.backends import mask_url
from conveyor.errors import BackendUnavailable, ConfigurationError, ConveyorError, exit_code
from conveyor.settings import Settings, resolve_database_url

if TYPE_CHECKING:
    from conveyor.events import EventBus
    from conveyor.worker.runtime import Worker

GC_THRESHOLD = 7_000  # allocations between young collections (CPython's default: 700)
APP_HELP = "The Conveyor app to run, as module:attribute (e.g. myproject.tasks:app)."
URL_HELP = "Database URL (else CONVEYOR_DATABASE_URL, else the app's, else sqlite:///conveyor.db)."
DESCRIPTION = "Run a worker: claim jobs from the queues and run the app's tasks."


@dataclass(frozen=True, slots=True)
class Option:
    """One option of ``conveyor worker``. ``default`` is ``...`` for a required option."""

    flags: tuple[str, ...]
    type: type[str] | type[int] | type[float]
    default: object
    help: str
    min: float | None = None
    max: float | None = None


# Keyword argument of ``run`` -> its option. conveyor.cli.worker builds the typer command's
# options from these too (tests/cli/test_worker_options.py checks that they agree).
OPTIONS: dict[str, Option] = {
    "app_spec": Option(("--app", "-a"), str, ..., APP_HELP),
    "queues": Option(
        ("--queues", "-q"), str, None, "Comma-separated queues (default: the app's task queues)."
    ),
    "concurrency": Option(("--concurrency", "-c"), int, 10, "Jobs at once.", min=1),
    "processes": Option(("--processes", "-p"), int, 1, "Worker processes.", min=1),
    "grace": Option(
        ("--grace",), float, None, "Seconds running jobs get to finish on SIGTERM (30).", min=0
    ),
    "database_url": Option(("--database-url",), str, None, URL_HELP),
    "metrics_port": Option(
        ("--metrics-port",),
        int,
        None,
        "Serve Prometheus metrics on 127.0.0.1:PORT (PORT+i for the i-th of --processes).",
        min=1,
        max=65535,
    ),
}


def load_app(spec: str) -> Conveyor:
    """Import ``module:attr`` and return the Conveyor app there (one-line errors)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"--app must look like module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"cannot import module {module_name!r}: {exc}") from exc
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, Conveyor):
        raise ConfigurationError(f"{spec} is a {type(obj).__name__}, not a Conveyor app")
    return obj


def _queues(option: str | None, app: Conveyor) -> tuple[str, ...]:
    if option:
        queues = tuple(q.strip() for q in option.split(",") if q.strip())
        if not queues:
            raise ConfigurationError("--queues needs at least one queue name")
        return queues
    return tuple(sorted({r.options.queue for r in app.registry})) or ("default",)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
        stream=sys.stderr,
    )


async def _watch_supervisor(expected: int, worker: Worker) -> None:
    """Stop this child if its supervisor died (we were re-parented). Polling: no event
    tells a process that its parent is gone."""
    while os.getppid() == expected:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    logging.getLogger("conveyor.worker").warning("supervisor %d is gone; stopping", expected)
    worker.request_stop()


def _tune_gc() -> None:
    """A worker process allocates a few short-lived objects per job: move everything loaded
    at start-up (modules, the app) out of the collector's sight and collect young objects
    less often. Cuts the collector's share from ~9 to ~0 us per job (docs/performance.md).
    Process-wide, so only here (a dedicated worker process), never in ``Worker`` itself."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def _start_metrics(port: int) -> tuple[EventBus, Callable[[], None]]:
    """Prometheus metrics of this worker process on 127.0.0.1: ``port`` for a single
    process, ``port + slot`` for the children of ``--processes N`` (slot 0 .. N-1)."""
    from conveyor.events import EventBus
    from conveyor.observability.metrics import install_metrics, start_metrics_server
    from conveyor.worker.supervisor import SLOT_ENV

    slot = os.environ.get(SLOT_ENV, "0")
    port += int(slot) if slot.isdigit() else 0
    bus = EventBus()
    stop = start_metrics_server(port, install_metrics(bus))
    logging.getLogger("conveyor.worker").info("metrics on http://127.0.0.1:%d/metrics", port)
    return bus, stop


async def _serve(
    app: Conveyor, config_args: dict[str, object], metrics_port: int | None = None
) -> None:
    from conveyor.worker.config import WorkerConfig
    from conveyor.worker.runtime import Worker

    bus, stop_metrics = _start_metrics(metrics_port) if metrics_port else (None, None)
    worker = Worker(app, config=WorkerConfig(**config_args), events=bus)  # type: ignore[arg-type]
    _tune_gc()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.request_stop)
    watchdog = None
    supervisor = os.environ.get("CONVEYOR_SUPERVISOR_PID")
    if supervisor and supervisor.isdigit():
        watchdog = asyncio.create_task(_watch_supervisor(int(supervisor), worker))
    try:
        await worker.run()
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if stop_metrics is not None:
            stop_metrics()
        await app.aclose()


async def _supervise(child_args: list[str], processes: int, url: str) -> int:
    from conveyor.worker.supervisor import Supervisor

    supervisor = Supervisor(child_args, processes, env={**os.environ, "CONVEYOR_DATABASE_URL": url})
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, supervisor.request_stop)
    return await supervisor.run()


def run(
    *,
    app_spec: str,
    queues: str | None = None,
    concurrency: int = 10,
    processes: int = 1,
    grace: float | None = None,
    database_url: str | None = None,
    metrics_port: int | None = None,
) -> int:
    """Run a worker (``processes`` > 1: a supervisor of that many worker processes) until
    it is stopped; returns the exit code. Raises ``ConveyorError`` with a one-line message."""
    settings = Settings()
    _configure_logging(settings.log_level)
    app = load_app(app_spec)
    url = resolve_database_url(database_url, app.configured_url)
    app.use_database_url(url)
    grace_seconds = settings.grace_seconds if grace is None else grace
    chosen = _queues(queues, app)
    if processes > 1:
        child = ["--app", app_spec, "--queues", ",".join(chosen), "--concurrency", str(concurrency)]
        child += ["--grace", str(grace_seconds), "--processes", "1"]
        if metrics_port:
            child += ["--metrics-port", str(metrics_port)]
        return asyncio.run(_supervise(child, processes, url))
    if not app.registry.kinds():
        raise ConfigurationError(f"{app_spec} has no tasks: nothing for a worker to run")
    config = {
        "queues": chosen,
        "concurrency": concurrency,
        "grace": timedelta(seconds=grace_seconds),
        "lease": settings.lease,
        "max_rescues": settings.max_rescues,
    }
    logging.getLogger("conveyor.worker").info(
        "worker on %s, queues %s, concurrency %d", mask_url(url), ",".join(chosen), concurrency
    )
    translate(lambda: _run_loop(_serve(app, config, metrics_port)), url)
    return 0


def _run_loop(main: Coroutine[object, object, None]) -> None:
    """Run the worker's loop: uvloop when installed (a cheaper loop per job, see
    docs/performance.md) unless ``CONVEYOR_UVLOOP=0``; else the standard asyncio loop."""
    factory = None
    if os.environ.get("CONVEYOR_UVLOOP", "1").lower() not in ("0", "false", "no", "off"):
        try:
            import uvloop
        except ImportError:
            pass  # not installed: the standard asyncio loop (factory stays None)
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def translate(run: Callable[[], object], url: str) -> None:
    """Run, turning a stray driver or OS error into a one-line ``BackendUnavailable``."""
    try:
        run()
    except ConveyorError:
        raise
    except (OSError, ImportError) as exc:
        raise BackendUnavailable(f"cannot use {mask_url(url)}: {exc}") from exc


def _bounded(
    number: Callable[[str], float], low: float | None, high: float | None
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = number(text)
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum of {low:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} is above the maximum of {high:g}")
        return value

    parse.__name__ = number.__name__  # argparse's message: "invalid int value: 'x'"
    return parse


def parser() -> argparse.ArgumentParser:
    """``OPTIONS`` as an argparse parser: usage errors exit 2 with ``conveyor worker:
    error: ...``, like the typer command's."""
    parser = argparse.ArgumentParser(prog="conveyor worker", description=DESCRIPTION)
    for name, option in OPTIONS.items():
        parse: Callable[[str], object] = option.type
        if option.type is int or option.type is float:
            parse = _bounded(option.type, option.min, option.max)
        required = option.default is ...
        parser.add_argument(
            *option.flags,
            dest=name,
            metavar=option.flags[0].lstrip("-").replace("-", "_").upper(),
            type=parse,
            default=None if required else option.default,
            required=required,
            help=option.help,
        )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """``conveyor worker`` and ``python -m conveyor.worker``: parse, run, exit with the
    worker's code; a ``ConveyorError`` is one line on stderr, never a traceback."""
    args = parser().parse_args(argv)
    try:
        code = run(**vars(args))
    except ConveyorError as exc:
        red, reset = ("\x1b[31m", "\x1b[0m") if sys.stderr.isatty() else ("", "")
        sys.stderr.write(f"{red}error: {exc}{reset}\n")
        sys.exit(exit_code(exc))
    if code:
        sys.exit(code)
