"""``conveyor token create/list/revoke``: API tokens, managed directly in the backend (not over
HTTP: the first token has to come from somewhere).

``create`` prints the new token alone on its last line, once; only its SHA-256 is stored, so
it cannot be shown again. Who calls it: operators, ``conveyor.cli`` at startup (``register``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from conveyor.backend import Backend
from conveyor.backends import mask_url, open_backend
from conveyor.cli.http import JsonOption, err, out, print_json, usage
from conveyor.settings import resolve_database_url

T = TypeVar("T")

token_app = typer.Typer(
    help="API tokens (bearer, with scopes), stored hashed.", no_args_is_help=True
)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL (else CONVEYOR_DATABASE_URL, else sqlite:///conveyor.db).",
    ),
]


def with_backend(url: str | None, action: Callable[[Backend], Awaitable[T]]) -> T:
    async def run() -> T:
        backend = open_backend(resolve_database_url(url))
        await backend.open()
        try:
            return await action(backend)
        finally:
            await backend.close()

    return asyncio.run(run())


@token_app.command("create")
def create(
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="jobs:read, jobs:write or admin (repeatable)."),
    ] = None,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
    database_url: DatabaseOption = None,
) -> None:
    """Create a token. It is printed once, alone on the last line."""
    from conveyor.api.auth import Scope, new_record  # the web stack only when used

    scopes = scope or []
    if not scopes:
        usage("give at least one --scope (jobs:read, jobs:write, admin)")
    valid = {s.value for s in Scope}
    bad = [s for s in scopes if s not in valid]
    if bad:
        usage(f"unknown scope {bad[0]!r}; use {', '.join(sorted(valid))}")
    secret, record = new_record(name or "token", scopes)

    async def store(backend: Backend) -> str:
        await backend.create_token(record)
        return backend.url

    where = with_backend(database_url, store)
    err.print(
        f"created token {record.id} ({', '.join(record.scopes)}) in {mask_url(where)}; "
        "it is shown once, store it now:"
    )
    typer.echo(secret)


@token_app.command("list")
def list_tokens(database_url: DatabaseOption = None, json: JsonOption = False) -> None:
    """Tokens (never their secrets)."""

    async def fetch(backend: Backend) -> list[dict[str, object]]:
        return [
            {
                "id": t.id,
                "name": t.name,
                "scopes": list(t.scopes),
                "created_at": t.created_at.isoformat(),
                "revoked_at": None if t.revoked_at is None else t.revoked_at.isoformat(),
            }
            for t in await backend.list_tokens()
        ]

    tokens = with_backend(database_url, fetch)
    if json:
        print_json(tokens)
        return
    table = Table()
    for column in ("id", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for t in tokens:
        table.add_row(
            str(t["id"]),
            str(t["name"]),
            ", ".join(map(str, t["scopes"])),  # type: ignore[call-overload]
            str(t["created_at"])[:19].replace("T", " "),
            "-" if t["revoked_at"] is None else str(t["revoked_at"])[:19].replace("T", " "),
        )
    out.print(table)


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from token list).")],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a token; requests with it get 401 within seconds."""

    async def act(backend: Backend) -> bool:
        return await backend.revoke_token(token_id)

    if not with_backend(database_url, act):
        err.print(f"[red]error:[/red] no live token with id {token_id!r}")
        raise typer.Exit(1)
    out.print(f"revoked token {token_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
