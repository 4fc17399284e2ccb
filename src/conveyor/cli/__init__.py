"""The ``conveyor`` command line (Typer + Rich). With ``conveyor.worker.command`` (the worker
process's own entry point, D22), the only place that installs signal handlers.

Each command group lives in its own module with a ``register(app)`` function; heavy imports
(the web stack, drivers) happen inside the commands, so ``conveyor worker`` never loads
FastAPI. Every ``ConveyorError`` becomes a one-line message and a non-zero exit code.
"""

from __future__ import annotations

import importlib
import sys

import typer

from conveyor.errors import ConveyorError, exit_code

app = typer.Typer(
    name="conveyor",
    help="Conveyor: durable jobs, run by workers, watched over HTTP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules, each with register(app). Order is the order of `conveyor --help`.
COMMAND_MODULES = (
    "conveyor.cli.server",  # up, api
    "conveyor.cli.worker",  # worker, migrate
    "conveyor.cli.client",  # submit, jobs, dlq, queues, workers
    "conveyor.cli.tokens",  # token create/list/revoke
    "conveyor.cli.webhooks",  # webhooks endpoints
)


# Commands served by one module alone: load only that one (a worker process need not import
# the HTTP client, Rich tables or the web stack; it keeps worker RSS down).
SOLO_COMMANDS = {"worker": "conveyor.cli.worker", "migrate": "conveyor.cli.worker"}


def _register_all(argv: list[str] | None = None) -> None:
    """Register the command modules; with ``argv`` naming a solo command, only its module."""
    solo = SOLO_COMMANDS.get(argv[1]) if argv and len(argv) > 1 else None
    for name in (solo,) if solo else COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet: leave the command out
                continue
            raise
        module.register(app)


def main() -> None:
    argv = sys.argv
    if len(argv) > 1 and argv[1] == "worker" and not {"--help", "-h"} & set(argv[2:]):
        # A worker process parses its own options (conveyor.worker.command, D22): it never
        # builds the typer commands, whose adapters import pydantic (about 8 MiB of RSS).
        from conveyor.worker.command import main as worker_main

        worker_main(argv[2:])
        return
    _register_all(argv)
    try:
        app()
    except ConveyorError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exit_code(exc))
