"""``conveyor worker`` and ``conveyor migrate`` as typer commands.

The worker itself lives in ``conveyor.worker.command``, without typer: ``conveyor worker``
(unless asked for ``--help``) and every worker process run it from there, with argparse
(``conveyor.cli.main``). The typer command below declares the same options, from the same
``OPTIONS`` table, so ``conveyor worker --help`` reads like every other command's help.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from conveyor.backend import MigrationStatus
from conveyor.backends import mask_url, open_backend
from conveyor.settings import resolve_database_url
from conveyor.worker.command import (
    APP_HELP,
    DESCRIPTION,
    OPTIONS,
    URL_HELP,
    load_app,
    run,
    translate,
)


def _option(name: str) -> Any:  # typed like typer.Option: a default of any parameter type
    option = OPTIONS[name]
    return typer.Option(
        option.default, *option.flags, help=option.help, min=option.min, max=option.max
    )


def worker_command(
    *,
    app_spec: str = _option("app_spec"),
    queues: str | None = _option("queues"),
    concurrency: int = _option("concurrency"),
    processes: int = _option("processes"),
    grace: float | None = _option("grace"),
    database_url: str | None = _option("database_url"),
    metrics_port: int | None = _option("metrics_port"),
) -> None:
    code = run(
        app_spec=app_spec,
        queues=queues,
        concurrency=concurrency,
        processes=processes,
        grace=grace,
        database_url=database_url,
        metrics_port=metrics_port,
    )
    if code:
        raise typer.Exit(code)


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
    translate(lambda: status.append(asyncio.run(_migrate(url))), url)
    typer.echo(f"{mask_url(url)}: schema at version {status[0].current} of {status[0].latest}")


def register(app: typer.Typer) -> None:
    app.command("worker", help=DESCRIPTION)(worker_command)
    app.command("migrate")(migrate_command)
