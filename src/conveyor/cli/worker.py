"""``conveyor worker`` and ``conveyor migrate``.

This module (with ``conveyor.cli``) is the only place that installs signal handlers: the
first SIGTERM/SIGINT stops the worker gracefully (``--grace``), a second one at once (jobs
still released). It never imports the web stack: a worker's memory footprint matters.
The database URL is ``--database-url``, else ``CONVEYOR_DATABASE_URL``, else the app's, else
``sqlite:///conveyor.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import inspect
import logging
import os
import signal
import sys
import typing
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import typer

from conveyor.app import Conveyor
from conveyor.backend import MigrationStatus
from conveyor.backends import mask_url, open_backend
from conveyor.errors import BackendUnavailable, ConfigurationError, ConveyorError
from conveyor.settings import Settings, resolve_database_url

if TYPE_CHECKING:
    from conveyor.events import EventBus
    from conveyor.worker.runtime import Worker

GC_THRESHOLD = 7_000  # allocations between young collections (CPython's default: 700)
APP_HELP = "The Conveyor app to run, as module:attribute (e.g. myproject.tasks:app)."
URL_HELP = "Database URL (else CONVEYOR_DATABASE_URL, else the app's, else sqlite:///conveyor.db)."


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


def worker_command(
    *,
    app_spec: str = typer.Option(..., "--app", "-a", help=APP_HELP),
    queues: str | None = typer.Option(
        None, "--queues", "-q", help="Comma-separated queues (default: the app's task queues)."
    ),
    concurrency: int = typer.Option(10, "--concurrency", "-c", min=1, help="Jobs at once."),
    processes: int = typer.Option(1, "--processes", "-p", min=1, help="Worker processes."),
    grace: float | None = typer.Option(
        None, "--grace", min=0, help="Seconds running jobs get to finish on SIGTERM (30)."
    ),
    database_url: str | None = typer.Option(None, "--database-url", help=URL_HELP),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve Prometheus metrics on 127.0.0.1:PORT (PORT+i for the i-th of --processes).",
    ),
) -> None:
    """Run a worker: claim jobs from the queues and run the app's tasks."""
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
        code = asyncio.run(_supervise(child, processes, url))
        raise typer.Exit(code)
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
    _translate(lambda: _run_loop(_serve(app, config, metrics_port)), url)


def _run_loop(main: Coroutine[object, object, None]) -> None:
    """Run the worker's loop: uvloop when installed (a cheaper loop per job, see
    docs/performance.md) unless ``CONVEYOR_UVLOOP=0``; else the standard asyncio loop."""
    factory = None
    if os.environ.get("CONVEYOR_UVLOOP", "1").lower() not in ("0", "false", "no", "off"):
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def _translate(run: Callable[[], object], url: str) -> None:
    """Run, turning a stray driver or OS error into a one-line ``BackendUnavailable``."""
    try:
        run()
    except ConveyorError:
        raise
    except (OSError, ImportError) as exc:
        raise BackendUnavailable(f"cannot use {mask_url(url)}: {exc}") from exc


async def _migrate(url: str) -> MigrationStatus:
    backend = open_backend(url, migrate=True)  # open() migrates (safe when run concurrently)
    await backend.open()
    try:
        return await backend.migrate()
    finally:
        await backend.close()


def migrate_command(
    database_url: str | None = typer.Option(None, "--database-url", help=URL_HELP),
    app_spec: str | None = typer.Option(None, "--app", "-a", help=APP_HELP),
) -> None:
    """Create or upgrade the database schema (safe to run from several processes)."""
    app_url = load_app(app_spec).configured_url if app_spec else None
    url = resolve_database_url(database_url, app_url)
    status: list[MigrationStatus] = []
    _translate(lambda: status.append(asyncio.run(_migrate(url))), url)
    typer.echo(f"{mask_url(url)}: schema at version {status[0].current} of {status[0].latest}")


def _bounded(
    number: Callable[[str], float], low: float | None, high: float | None
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = number(text)
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is not in the range {low}..{high}")
        return value

    return parse


def _child_parser() -> argparse.ArgumentParser:
    """``worker_command``'s typer options, read from its signature and parsed by argparse
    (for ``conveyor worker`` and ``python -m conveyor.worker``): building a typer command
    imports pydantic (``typer._adapters``), about 8 MiB of each worker process's RSS.
    ``conveyor worker --help`` still shows typer's help."""
    parser = argparse.ArgumentParser(prog="conveyor worker", description=worker_command.__doc__)
    hints = typing.get_type_hints(worker_command)
    for name, param in inspect.signature(worker_command).parameters.items():
        info = param.default
        assert isinstance(info, typer.models.OptionInfo), name
        types = (hints[name], *typing.get_args(hints[name]))
        parse: Callable[[str], object] = str
        if int in types:
            parse = _bounded(int, info.min, info.max)
        elif float in types:
            parse = _bounded(float, info.min, info.max)
        required = info.default is ...
        default = None if required else info.default
        decls = [d for d in info.param_decls or () if d.startswith("-")]
        parser.add_argument(
            *decls,
            dest=name,
            metavar=decls[0].lstrip("-").replace("-", "_").upper(),
            type=parse,
            default=default,
            required=required,
            help=info.help,
        )
    return parser


def worker_main(argv: Sequence[str] | None = None) -> None:
    """``conveyor worker`` and ``python -m conveyor.worker``: the worker command alone, with
    no typer command built (lean worker processes)."""
    from conveyor.cli import EXIT_ERROR, EXIT_UNAVAILABLE

    args = _child_parser().parse_args(argv)
    try:
        worker_command(**vars(args))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ConveyorError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(EXIT_UNAVAILABLE if isinstance(exc, BackendUnavailable) else EXIT_ERROR)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_command)
    app.command("migrate")(migrate_command)
