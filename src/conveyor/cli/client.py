"""``conveyor submit`` and ``conveyor jobs list/show/cancel/requeue/watch``: the HTTP API from a
terminal. Rich tables for people, ``--json`` for scripts, exit codes from ``cli.http``.

``register(app)`` also adds the operator commands of ``conveyor.cli.ops`` (dlq, queues,
workers). Who calls it: ``conveyor.cli`` at startup.
"""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.table import Table

from conveyor.cli import ops
from conveyor.cli.http import (
    Api,
    JsonOption,
    TokenOption,
    UrlOption,
    out,
    print_json,
    usage,
)
from conveyor.cli.render import jobs_table, short_time, styled
from conveyor.cli.watch import watch_job

jobs_app = typer.Typer(help="List, inspect, cancel, requeue and watch jobs.", no_args_is_help=True)


def parse_payload(raw: str) -> dict[str, object]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        usage(f"--payload is not valid JSON: {exc}")
    if not isinstance(payload, dict):
        usage('--payload must be a JSON object, like \'{"to": "a@example.com"}\'')
    return payload


def submit(
    kind: Annotated[str, typer.Argument(help="The kind of job (which handler runs it).")],
    *,
    payload: Annotated[str, typer.Option("--payload", "-p", help="JSON object input.")] = "{}",
    queue: Annotated[str | None, typer.Option(help="Queue (default: the kind's).")] = None,
    delay: Annotated[float | None, typer.Option(help="Run after this many seconds.", min=0)] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    max_attempts: Annotated[int | None, typer.Option(min=1)] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Enqueue at most once.")] = None,
    allow_unknown_kind: Annotated[
        bool, typer.Option(help="Accept a kind no worker knows.")
    ] = False,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Enqueue one job."""
    body: dict[str, object] = {"kind": kind, "payload": parse_payload(payload)}
    for name, value in (
        ("queue", queue),
        ("delay_seconds", delay),
        ("priority", priority),
        ("max_attempts", max_attempts),
    ):
        if value is not None:
            body[name] = value
    if allow_unknown_kind:
        body["allow_unknown_kind"] = True
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    with Api(url, token) as api:
        response = api.call("POST", "/jobs", json=body, headers=headers)
    job = response.json()
    if json:
        print_json(job)
        return
    verb = "enqueued" if response.status_code == 201 else "already enqueued (idempotency key)"
    out.print(f"{verb} job [bold]{job['id']}[/] ({job['kind']} on {job['queue']}, {job['status']})")


@jobs_app.command("list")
def list_jobs(
    *,
    status: Annotated[list[str] | None, typer.Option(help="Filter by status (repeatable).")] = None,
    queue: Annotated[list[str] | None, typer.Option(help="Filter by queue (repeatable).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Filter by kind (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Jobs, newest first."""
    params = [("limit", str(limit))]
    params += [("status", s) for s in status or ()]
    params += [("queue", q) for q in queue or ()]
    params += [("kind", k) for k in kind or ()]
    if cursor:
        params.append(("cursor", cursor))
    with Api(url, token) as api:
        page = api.call("GET", "/jobs", params=params).json()
    if json:
        print_json(page)
        return
    out.print(jobs_table(page["jobs"]))
    if page["next_cursor"]:
        out.print(f"more: --cursor {page['next_cursor']}", style="dim")


def print_job(job: dict[str, object]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key in ("id", "kind", "queue", "status", "priority", "attempts", "max_attempts"):
        value = styled(str(job[key])) if key == "status" else str(job[key])
        table.add_row(key, value)
    table.add_row("payload", orjson.dumps(job["payload"]).decode())
    for key in ("result", "progress", "idempotency_key", "lease_owner"):
        if job.get(key) is not None:
            table.add_row(key, orjson.dumps(job[key]).decode())
    for key in ("run_at", "created_at", "started_at", "finished_at"):
        table.add_row(key, short_time(job.get(key)))
    if job.get("cancel_requested"):
        table.add_row("cancel_requested", "yes")
    out.print(table)
    errors = job.get("errors")
    if isinstance(errors, list) and errors:
        err_table = Table(title="errors", title_justify="left")
        for column in ("attempt", "at", "type", "message"):
            err_table.add_column(column)
        for entry in errors:
            err_table.add_row(
                str(entry["attempt"]), short_time(entry["at"]), entry["type"], entry["message"]
            )
        out.print(err_table)


@jobs_app.command("show")
def show(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """One job: status, attempts, errors per attempt, result, progress, timestamps."""
    with Api(url, token) as api:
        job = api.call("GET", f"/jobs/{job_id}").json()
    if json:
        print_json(job)
    else:
        print_job(job)


@jobs_app.command("cancel")
def cancel(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Cancel a job (a running job is told to stop)."""
    with Api(url, token) as api:
        job = api.call("DELETE", f"/jobs/{job_id}").json()
    if json:
        print_json(job)
    elif job["status"] == "cancelled":
        out.print(f"cancelled job {job['id']}")
    else:
        out.print(f"asked job {job['id']} to stop (it is {job['status']})")


@jobs_app.command("requeue")
def requeue(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Bring a failed or cancelled job back to the queue."""
    with Api(url, token) as api:
        job = api.call("POST", f"/jobs/{job_id}/requeue").json()
    if json:
        print_json(job)
    else:
        out.print(f"requeued job {job['id']} on {job['queue']}")


@jobs_app.command("watch")
def watch(
    job_id: Annotated[str, typer.Argument(help="The job id.")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    json: JsonOption = False,
) -> None:
    """Follow a job live (status, progress, log lines) until it ends. Exits 0 when it
    completed, 1 when it failed or was cancelled. ``--json``: one event per line."""
    with Api(url, token) as api:
        final = watch_job(api, job_id, as_json=json)
    if final != "completed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(help="Enqueue one job.")(submit)
    app.add_typer(jobs_app, name="jobs")
    ops.register(app)
