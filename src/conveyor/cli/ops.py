"""Operator commands over the HTTP API: ``conveyor dlq list/requeue``, ``conveyor queues``
(list, pause, resume, max-depth) and ``conveyor workers``.

Who calls it: ``conveyor.cli.client.register``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from conveyor.cli.http import Api, JsonOption, TokenOption, UrlOption, err, out, print_json, usage

REQUEUE_CHUNK = 100

dlq_app = typer.Typer(help="The dead-letter queue: failed jobs.", no_args_is_help=True)
queues_app = typer.Typer(help="Queues: depth, pause/resume, max depth.")


@dlq_app.command("list")
def dlq_list(
    *,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    cursor: Annotated[str | None, typer.Option()] = None,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Failed jobs, newest first, with their last error."""
    params = [("limit", str(limit))]
    params += [("queue", queue)] if queue else []
    params += [("kind", kind)] if kind else []
    params += [("cursor", cursor)] if cursor else []
    with Api(url, token) as api:
        page = api.call("GET", "/dlq", params=params).json()
    if json:
        print_json(page)
        return
    table = Table()
    for column in ("id", "kind", "queue", "attempts", "last error"):
        table.add_column(column, no_wrap=column == "id")
    for job in page["jobs"]:
        errors = job["errors"]
        last = f"{errors[-1]['type']}: {errors[-1]['message']}" if errors else "-"
        table.add_row(job["id"], job["kind"], job["queue"], str(job["attempts"]), last)
    out.print(table)
    if page["next_cursor"]:
        out.print(f"more: --cursor {page['next_cursor']}", style="dim")


def _dead_ids(api: Api, queue: str | None, kind: str | None) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = [("limit", "1000")]
        params += [("queue", queue)] if queue else []
        params += [("kind", kind)] if kind else []
        params += [("cursor", cursor)] if cursor else []
        page = api.call("GET", "/dlq", params=params).json()
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


@dlq_app.command("requeue")
def dlq_requeue(
    ids: Annotated[list[str] | None, typer.Argument(help="Job ids to requeue.")] = None,
    *,
    all_: Annotated[bool, typer.Option("--all", help="Every failed job.")] = False,
    queue: Annotated[str | None, typer.Option(help="Every failed job of this queue.")] = None,
    kind: Annotated[str | None, typer.Option(help="Every failed job of this kind.")] = None,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Requeue failed jobs: by ids, or ``--all`` / ``--queue`` / ``--kind``, with progress."""
    if ids and (all_ or queue or kind):
        usage("give job ids or a filter (--all, --queue, --kind), not both")
    if not ids and not (all_ or queue or kind):
        usage("give job ids, or --all, --queue or --kind")
    with Api(url, token) as api:
        targets = list(ids) if ids else _dead_ids(api, queue, kind)
        requeued: list[str] = []
        with Progress(
            TextColumn("requeueing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            disable=json or len(targets) <= REQUEUE_CHUNK,
        ) as progress:
            task = progress.add_task("requeue", total=len(targets))
            for start in range(0, len(targets), REQUEUE_CHUNK):
                chunk = targets[start : start + REQUEUE_CHUNK]
                body = api.call("POST", "/dlq/requeue", json={"ids": chunk}).json()
                requeued += body["requeued"]
                progress.advance(task, len(chunk))
    if json:
        print_json({"requeued": requeued, "count": len(requeued)})
        return
    skipped = len(targets) - len(requeued)
    note = f" ({skipped} skipped: not in the dead-letter queue)" if skipped else ""
    out.print(f"requeued {len(requeued)} job(s){note}")


def _queues_table(queues: list[dict[str, object]]) -> Table:
    table = Table()
    for column in ("queue", "waiting", "running", "failed", "oldest", "done/min", "paused", "max"):
        table.add_column(column)
    for q in queues:
        counts = q["counts"]
        assert isinstance(counts, dict)
        age = q["oldest_queued_age_seconds"]
        table.add_row(
            str(q["queue"]),
            str(q["depth"]),
            str(counts.get("running", 0)),
            str(counts.get("failed", 0)),
            "-" if age is None else f"{age}s",
            str(q["completed_last_minute"]),
            "[yellow]paused[/]" if q["paused"] else "no",
            "-" if q["max_depth"] is None else str(q["max_depth"]),
        )
    return table


@queues_app.callback(invoke_without_command=True)
def queues_list(
    ctx: typer.Context,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Queues with their depth by status (the default when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    with Api(url, token) as api:
        queues = api.call("GET", "/queues").json()
    if json:
        print_json(queues)
    else:
        out.print(_queues_table(queues))


def _patch(url: str, token: str | None, name: str, body: dict[str, object], json: bool) -> None:
    with Api(url, token) as api:
        queue = api.call("PATCH", f"/queues/{name}", json=body).json()
    if json:
        print_json(queue)
    else:
        out.print(_queues_table([queue]))


QueueName = Annotated[str, typer.Argument(help="The queue's name.")]


@queues_app.command("pause")
def pause(
    name: QueueName,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Stop workers claiming from a queue (it still accepts jobs)."""
    _patch(url, token, name, {"paused": True}, json)


@queues_app.command("resume")
def resume(
    name: QueueName,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Let workers claim from a paused queue again."""
    _patch(url, token, name, {"paused": False}, json)


@queues_app.command("max-depth")
def max_depth(
    name: QueueName,
    depth: Annotated[str, typer.Argument(help="Maximum waiting jobs, or 'none'.")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Refuse new jobs (HTTP 429) once this many wait in the queue; 'none' removes the cap."""
    if depth.lower() in ("none", "null", "off"):
        value: int | None = None
    elif depth.isdigit() and int(depth) >= 1:
        value = int(depth)
    else:
        usage(f"max depth must be a positive integer or 'none', not {depth!r}")
    _patch(url, token, name, {"max_depth": value}, json)


def workers(
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Live workers: id, host, pid, queues, concurrency, running jobs, last heartbeat."""
    with Api(url, token) as api:
        listing = api.call("GET", "/workers").json()
    if json:
        print_json(listing)
        return
    table = Table()
    for column in ("id", "host", "pid", "queues", "running", "last seen"):
        table.add_column(column)
    for w in listing:
        table.add_row(
            w["id"],
            w["host"],
            str(w["pid"]),
            ",".join(w["queues"]),
            f"{w['running']}/{w['concurrency']}",
            (w["last_seen_at"] or "-")[:19].replace("T", " "),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(queues_app, name="queues")
    app.command(help="Live workers.")(workers)
