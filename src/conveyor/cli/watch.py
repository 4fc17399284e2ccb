"""``conveyor jobs watch``: follow a job's Server-Sent Events in a live Rich view (or print them
as JSON lines), reconnecting with ``Last-Event-ID`` if the stream drops mid-way.

Who calls it: ``conveyor.cli.client``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

import httpx
import orjson
import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from conveyor.cli.http import Api, fail, out
from conveyor.errors import EXIT_UNAVAILABLE

LOG_LINES_SHOWN = 15
RECONNECTS = 5


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str, str | None]]:
    """(event, data, id) for each event in a text/event-stream; comments are skipped."""
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data), event_id
            event, event_id, data = "message", None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value


class View:
    """What the live view shows: the job's latest state and its last log lines."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.job: dict[str, object] = {}
        self.progress: object = None
        self.logs: deque[str] = deque(maxlen=LOG_LINES_SHOWN)

    def apply(self, event: str, data: dict[str, object]) -> None:
        if event in ("status", "end"):
            self.job = data
            self.progress = data.get("progress")
        elif event == "progress":
            self.progress = data.get("progress")
        elif event == "log":
            self.logs.append(str(data.get("line", "")))

    def render(self) -> Panel:
        job = self.job
        head = Text.assemble(
            (f"{job.get('kind', '?')} ", "bold"),
            f"on {job.get('queue', '?')}  ",
            (str(job.get("status", "?")), "yellow"),
            f"  attempt {job.get('attempts', 0)}/{job.get('max_attempts', '?')}",
        )
        parts: list[Text] = [head]
        if self.progress is not None:
            parts.append(Text(f"progress: {orjson.dumps(self.progress).decode()}"))
        errors = job.get("errors")
        if isinstance(errors, list) and errors:
            last = errors[-1]
            parts.append(Text(f"last error: {last.get('type')}: {last.get('message')}", "red"))
        if self.logs:
            parts.append(Text("\n".join(self.logs), "dim"))
        return Panel(Group(*parts), title=self.job_id, title_align="left")


def follow(api: Api, job_id: str, on_event: Callable[[str, dict[str, object]], None]) -> str:
    """Feed every event to ``on_event`` until ``end``; returns the final status."""
    last_id: str | None = None
    drops = 0
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else None
        try:
            with api.stream(f"/jobs/{job_id}/events", headers=headers) as response:
                for event, raw, event_id in sse_events(response.iter_lines()):
                    data = orjson.loads(raw)
                    last_id = event_id or last_id
                    on_event(event, data)
                    if event == "end":
                        return str(data.get("status", "unknown"))
        except httpx.TransportError as exc:  # dropped mid-stream: reconnect a few times
            drops += 1
            if drops > RECONNECTS:
                fail(f"lost the event stream from {api.url} ({exc})", EXIT_UNAVAILABLE)
            time.sleep(min(0.5 * drops, 3.0))


def watch_job(api: Api, job_id: str, *, as_json: bool) -> str:
    """Follow until the job ends, as a live view or as JSON lines; returns its final status."""
    if as_json:
        return follow(
            api,
            job_id,
            lambda event, data: typer.echo(orjson.dumps({"event": event, "data": data}).decode()),
        )
    view = View(job_id)
    with Live(view.render(), console=out, auto_refresh=False) as live:

        def show(event: str, data: dict[str, object]) -> None:
            view.apply(event, data)
            live.update(view.render(), refresh=True)

        return follow(api, job_id, show)
