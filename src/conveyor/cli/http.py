"""The CLI's HTTP side: one small client for the Conveyor API, the shared options (``--url``,
``--token``, ``--json``) and the exit codes scripts can trust.

Exit codes: 0 ok; 1 the server answered with an error (its problem detail is printed on one
line); 2 usage (bad flags or arguments); 69 the server could not be reached. Never a
traceback.

Who calls it: ``conveyor.cli.client`` (submit, jobs, dlq, queues, workers) and its tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Annotated, NoReturn

import httpx
import orjson
import typer
from rich.console import Console

from conveyor import __version__
from conveyor.errors import EXIT_ERROR, EXIT_UNAVAILABLE, EXIT_USAGE

DEFAULT_URL = "http://127.0.0.1:8080"

UrlOption = Annotated[
    str, typer.Option("--url", envvar="CONVEYOR_URL", help="Base URL of the Conveyor API.")
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="CONVEYOR_TOKEN", help="Bearer token (conveyor token create)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

# Piped output is for scripts (--json); keep tables readable there too: no 80-column squeeze.
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def usage(message: str) -> NoReturn:
    fail(message, EXIT_USAGE)


def problem_line(response: httpx.Response) -> str:
    """One line from a problem-details (or any) error response."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return f"{response.status_code} {text[0] if text else response.reason_phrase}"
    if not isinstance(body, dict):
        return f"{response.status_code} {response.reason_phrase}"
    detail = body.get("detail") or body.get("title") or response.reason_phrase
    line = f"{response.status_code} {detail}"
    known = body.get("known_kinds")
    if isinstance(known, list) and known and "known kinds" not in str(detail):
        line += f" (known kinds: {', '.join(map(str, known))})"
    retry = response.headers.get("retry-after")
    if response.status_code == 429 and retry:
        line += f"; retry after {retry}s"
    return line


class Api:
    """A thin synchronous client: every error becomes a one-line message and an exit code."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"User-Agent": f"conveyor-cli/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            fail(f"cannot reach the Conveyor API at {self.url} ({reason})", EXIT_UNAVAILABLE)

    def call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        with self._reachable():
            content = None if json is None else orjson.dumps(json)
            hdrs = dict(headers or {})
            if content is not None:
                hdrs["Content-Type"] = "application/json"
            response = self.client.request(
                method,
                path,
                content=content,
                params=httpx.QueryParams(tuple(params)) if params else None,
                headers=hdrs,
            )
        if response.status_code >= 400:
            fail(problem_line(response))
        return response

    @contextmanager
    def stream(self, path: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A streamed GET. Only connecting is guarded here: a stream that drops mid-way raises
        ``httpx.TransportError`` to the caller, which may reconnect."""
        stack = ExitStack()
        timeout = httpx.Timeout(30.0, read=None)
        with self._reachable():
            response = stack.enter_context(
                self.client.stream("GET", path, headers=headers, timeout=timeout)
            )
        with stack:
            if response.status_code >= 400:
                response.read()
                fail(problem_line(response))
            yield response


def print_json(data: object) -> None:
    """JSON on stdout, exactly (no Rich markup or wrapping)."""
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
