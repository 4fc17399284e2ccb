"""``conveyor webhooks create/list/show/update/rotate/disable/delete/breakers``: named webhook
endpoints over the HTTP API (``/webhooks``). A secret is printed only by ``create`` and
``rotate``, the two answers that carry it.

Who calls it: ``conveyor.cli`` at startup (``register(app)``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from conveyor.cli.http import Api, JsonOption, TokenOption, UrlOption, out, print_json, usage

webhooks_app = typer.Typer(
    help="Webhook endpoints (signing secrets, rate limits) and circuit breakers.",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="The endpoint's name.")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _table(endpoints: list[dict[str, object]]) -> Table:
    table = Table()
    for column in ("name", "url", "rate limit", "state", "secrets", "updated"):
        table.add_column(column)
    for e in endpoints:
        state = "[red]disabled[/red]" if e.get("disabled") else "[green]enabled[/green]"
        if e.get("disabled_reason"):
            state += f" ({e['disabled_reason']})"
        rate = e.get("rate_limit")
        table.add_row(
            str(e["name"]),
            str(e["url"]),
            "-" if rate is None else f"{rate}/s",
            state,
            str(e.get("active_secrets", "")),
            str(e.get("updated_at") or "-")[:19].replace("T", " "),
        )
    return table


def _show(endpoint: dict[str, object], json: bool) -> None:
    if json:
        print_json(endpoint)
        return
    out.print(_table([endpoint]))
    secret = endpoint.get("secret")
    if isinstance(secret, str):
        out.print(f"signing secret (shown only now): [bold]{secret}[/bold]")


@webhooks_app.command("create")
def create(  # noqa: PLR0917 - Typer arguments and options
    name: Name,
    endpoint_url: Annotated[str, typer.Argument(metavar="URL", help="Where to POST.")],
    secret: Annotated[
        str | None, typer.Option(help="whsec_... (generated when not given).")
    ] = None,
    rate_limit: Annotated[float | None, typer.Option(help="Deliveries per second.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Register an endpoint; prints its signing secret once."""
    body: dict[str, object] = {"name": name, "url": endpoint_url}
    if secret is not None:
        body["secret"] = secret
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    with Api(url, token) as api:
        _show(api.call("POST", "/webhooks/endpoints", json=body).json(), json)


@webhooks_app.command("list")
def list_endpoints(
    url: UrlOption = DEFAULT_URL, token: TokenOption = None, json: JsonOption = False
) -> None:
    """Every endpoint (no secrets)."""
    with Api(url, token) as api:
        endpoints = api.call("GET", "/webhooks/endpoints").json()
    if json:
        print_json(endpoints)
    else:
        out.print(_table(endpoints))


@webhooks_app.command("show")
def show(
    name: Name, url: UrlOption = DEFAULT_URL, token: TokenOption = None, json: JsonOption = False
) -> None:
    """One endpoint (no secret)."""
    with Api(url, token) as api:
        _show(api.call("GET", f"/webhooks/endpoints/{name}").json(), json)


@webhooks_app.command("update")
def update(  # noqa: PLR0917 - Typer arguments and options
    name: Name,
    endpoint_url: Annotated[str | None, typer.Option("--endpoint-url", help="New URL.")] = None,
    rate_limit: Annotated[
        str | None, typer.Option(help="Deliveries per second, or 'none' to remove the limit.")
    ] = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Enable or disable deliveries.")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Change an endpoint's URL, rate limit, or enable/disable it."""
    body: dict[str, object] = {}
    if endpoint_url is not None:
        body["url"] = endpoint_url
    if rate_limit is not None:
        if rate_limit.lower() in ("none", "off", "null"):
            body["rate_limit"] = None
        else:
            try:
                body["rate_limit"] = float(rate_limit)
            except ValueError:
                usage(f"--rate-limit must be a number or 'none', not {rate_limit!r}")
    if enable is not None:
        body["disabled"] = not enable
    if not body:
        usage("nothing to change: give --endpoint-url, --rate-limit, --enable or --disable")
    with Api(url, token) as api:
        _show(api.call("PATCH", f"/webhooks/endpoints/{name}", json=body).json(), json)


@webhooks_app.command("disable")
def disable(
    name: Name, url: UrlOption = DEFAULT_URL, token: TokenOption = None, json: JsonOption = False
) -> None:
    """Stop deliveries to an endpoint (queued ones fail with a clear reason)."""
    with Api(url, token) as api:
        _show(
            api.call("PATCH", f"/webhooks/endpoints/{name}", json={"disabled": True}).json(), json
        )


@webhooks_app.command("rotate")
def rotate(
    name: Name,
    overlap_hours: Annotated[
        float, typer.Option(help="Hours the previous secret keeps signing.")
    ] = 24.0,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """A new signing secret (printed once); both sign during the overlap."""
    body = {"overlap_seconds": overlap_hours * 3600}
    with Api(url, token) as api:
        _show(api.call("POST", f"/webhooks/endpoints/{name}/rotate", json=body).json(), json)


@webhooks_app.command("delete")
def delete(name: Name, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Delete an endpoint."""
    with Api(url, token) as api:
        api.call("DELETE", f"/webhooks/endpoints/{name}")
    out.print(f"deleted webhook endpoint {name}")


@webhooks_app.command("breakers")
def breakers(
    url: UrlOption = DEFAULT_URL, token: TokenOption = None, json: JsonOption = False
) -> None:
    """Circuit breaker state per destination."""
    with Api(url, token) as api:
        listing = api.call("GET", "/webhooks/breakers").json()
    if json:
        print_json(listing)
        return
    table = Table()
    for column in ("destination", "state", "opened", "reopens"):
        table.add_column(column)
    for b in listing:
        table.add_row(
            b["host"], b["state"], (b["opened_at"] or "-")[:19].replace("T", " "), str(b["reopens"])
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
