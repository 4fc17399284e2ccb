"""A live API for the CLI tests: uvicorn on 127.0.0.1 (a free port) in a thread, over an
SQLite file, plus a way to run ``conveyor`` commands through Typer's runner."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from typer.testing import CliRunner, Result

from conveyor.api import create_app
from conveyor.backends import open_backend
from conveyor.cli import app as cli_app

KINDS = ("echo", "send_email")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveApi:
    url: str
    database_url: str

    def run(self, coro_fn: object) -> object:
        """Run ``coro_fn(backend)`` against the same store, on a fresh handle."""

        async def go() -> object:
            backend = open_backend(self.database_url)
            await backend.open()
            try:
                return await coro_fn(backend)  # type: ignore[operator]
            finally:
                await backend.close()

        return asyncio.run(go())


def serve(database_url: str, tokens_required: bool | None) -> Iterator[LiveApi]:
    app = create_app(
        database_url,
        registry_kinds=KINDS,
        tokens_required=tokens_required,
        token_cache_seconds=0.0,
        log_events=False,  # the server shares this process's stdout with the CLI runner
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", database_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.runner.invoke(cli_app, list(args), env=env, catch_exceptions=False)
