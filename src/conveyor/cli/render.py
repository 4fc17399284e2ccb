"""How the CLI shows jobs to people: status colours, times, the jobs table.

Who calls it: ``conveyor.cli.client`` and ``conveyor.cli.ops``.
"""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

STATUS_STYLE = {
    "scheduled": "cyan",
    "queued": "blue",
    "running": "yellow",
    "retrying": "magenta",
    "completed": "green",
    "failed": "red",
    "cancelled": "dim",
}


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def short_time(value: object) -> str:
    if not isinstance(value, str):
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")


def jobs_table(jobs: list[dict[str, object]], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("id", "kind", "queue", "status", "attempts", "created"):
        table.add_column(column, no_wrap=column == "id")
    for job in jobs:
        table.add_row(
            str(job["id"]),
            str(job["kind"]),
            str(job["queue"]),
            styled(str(job["status"])),
            f"{job['attempts']}/{job['max_attempts']}",
            short_time(job["created_at"]),
        )
    return table
