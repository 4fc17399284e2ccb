"""``conveyor up`` (API, dashboard page and a worker in one process: the zero-setup default on
SQLite) and ``conveyor api`` (the API alone, to scale out next to ``conveyor worker``).

Binding: the default is 127.0.0.1. Binding any other address while no API token exists is
refused unless ``--insecure``: an open job API on a network runs arbitrary work.

Signals: ``conveyor up`` handles SIGINT/SIGTERM itself: the first stops the HTTP server and
the worker gracefully (running jobs get the grace period, the rest are released back to the
queue), a second stops at once (jobs still released). uvicorn's own signal capture is
switched off so that one handler owns shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.app import Conveyor
from conveyor.backends import mask_url, open_backend, scheme_of
from conveyor.errors import ConfigurationError
from conveyor.settings import Settings, resolve_database_url

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from conveyor.worker.runtime import Worker

HOST_HELP = "Address to bind (127.0.0.1; other addresses need tokens or --insecure)."
URL_HELP = "Database URL (else CONVEYOR_DATABASE_URL, else the app's, else sqlite:///conveyor.db)."
APP_HELP = "Your Conveyor app, as module:attribute (e.g. myproject.tasks:app)."

HostOption = Annotated[str | None, typer.Option("--host", help=HOST_HELP)]
PortOption = Annotated[int | None, typer.Option("--port", min=0, max=65535)]
DatabaseOption = Annotated[str | None, typer.Option("--database-url", help=URL_HELP)]
AppOption = Annotated[str | None, typer.Option("--app", "-a", help=APP_HELP)]
InsecureOption = Annotated[
    bool, typer.Option("--insecure", help="Allow a non-loopback address with no API tokens.")
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


async def check_binding(url: str, host: str, insecure: bool) -> None:
    """Refuse a non-loopback bind with no live tokens (unless ``insecure``)."""
    if is_loopback(host) or insecure:
        return
    from conveyor.api.auth import live_tokens

    backend = open_backend(url)
    await backend.open()
    try:
        count = await live_tokens(backend)
    finally:
        await backend.close()
    if count == 0:
        raise ConfigurationError(
            f"refusing to listen on {host} with no API tokens: anyone who can reach it could "
            "run jobs. Create one with `conveyor token create --scope admin`, or pass "
            "--insecure if the network is trusted."
        )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before anything else starts, so a busy port is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn without its own signal handlers: the CLI owns shutdown."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


def _uvicorn_config(api: FastAPI, settings: Settings) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        api,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.grace_seconds)),
        server_header=False,
    )


def load_app(spec: str | None) -> Conveyor | None:
    if spec is None:
        return None
    from conveyor.worker.command import load_app as load

    return load(spec)


# ------------------------------------------------------------------------------ conveyor api


def app_from_environment() -> FastAPI:
    """The uvicorn factory for ``conveyor api --workers N`` (each process builds its app)."""
    from conveyor.api import create_app

    settings = Settings()
    spec = os.environ.get("CONVEYOR_API_APP") or None
    app = load_app(spec)
    url = resolve_database_url(None, app.configured_url if app else None)
    # Without --app, a bare app still knows the built-in kinds (webhook) and their defaults.
    registry = (app or Conveyor(url)).registry
    access_log = os.environ.get("CONVEYOR_API_ACCESS_LOG", "1") != "0"
    return create_app(
        url,
        settings=settings,
        kind_defaults={r.kind: r.options for r in registry},
        access_log=access_log,
    )


def api_command(
    *,
    host: HostOption = None,
    port: PortOption = None,
    database_url: DatabaseOption = None,
    app_spec: AppOption = None,
    insecure: InsecureOption = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="API processes.")] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="One log line per request.")
    ] = True,
) -> None:
    """Serve the HTTP API (no worker): pair it with `conveyor worker`."""
    from conveyor.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    host = host or settings.host
    port = settings.port if port is None else port
    app = load_app(app_spec)
    url = resolve_database_url(database_url, app.configured_url if app else None)
    asyncio.run(check_binding(url, host, insecure))
    os.environ["CONVEYOR_DATABASE_URL"] = url
    if app_spec:
        os.environ["CONVEYOR_API_APP"] = app_spec
    os.environ["CONVEYOR_API_ACCESS_LOG"] = "1" if access_log else "0"
    import uvicorn

    sock = bind_socket(host, port)
    typer.echo(f"Conveyor API on http://{host}:{port} ({mask_url(url)})", err=True)
    config = uvicorn.Config(
        "conveyor.cli.server:app_from_environment",
        factory=True,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(settings.grace_seconds)),
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
    )
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        # uvicorn's loop factory: uvloop when installed (``uvicorn.run`` would pick it too;
        # a bare ``asyncio.run`` would not).
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve_api(_server(config), sock))


async def _serve_api(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM (a second one: at once), then exit 0."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    await server.serve(sockets=[sock])


# ------------------------------------------------------------------------------ conveyor up


def sqlite_path(url: str) -> str | None:
    if scheme_of(url) != "sqlite":
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    return os.path.abspath(path)


def welcome(host: str, port: int, url: str, app: Conveyor, demo: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    path = sqlite_path(url)
    kind = "conveyor.echo" if demo else (app.registry.kinds() or ("your.kind",))[0]
    payload = '{"message": "hello"}' if demo else "{}"
    body = f'{{"kind": "{kind}", "payload": {payload}}}'
    lines = [
        f"Conveyor is up: {base}  (API docs {base}/docs, metrics {base}/metrics)",
        f"Database: {path or mask_url(url)}",
        f"Tasks: {', '.join(app.registry.kinds()) or '(none)'}",
        "Try:",
        f"  curl -s -X POST {base}/jobs -H 'Content-Type: application/json' -d '{body}'",
        "Press Ctrl-C to stop (running jobs finish or go back to the queue).",
    ]
    return "\n".join(lines)


def _install_signals(server: uvicorn.Server, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        server.should_exit = True
        worker.request_stop(immediate=presses > 1)
        if presses > 1:
            server.force_exit = True
        else:
            typer.echo("stopping (again to stop at once)...", err=True)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)


async def _announce(server: uvicorn.Server, message: str) -> None:
    # uvicorn offers no event for "started"; poll its flag briefly.
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    typer.echo(message, err=True)


async def run_up(app: Conveyor, url: str, sock: socket.socket, banner: str) -> None:
    """The API and a worker on one loop, sharing the app's backend handle and event bus."""
    from conveyor.api import create_app
    from conveyor.events import EventBus
    from conveyor.observability.logging import log_job_events
    from conveyor.worker.config import WorkerConfig
    from conveyor.worker.runtime import Worker

    settings = Settings()
    app.use_database_url(url)
    backend = await app.backend()
    bus = EventBus()
    queues = tuple(sorted({r.options.queue for r in app.registry})) or ("default",)
    config = WorkerConfig(
        queues=queues, grace=settings.grace, lease=settings.lease, max_rescues=settings.max_rescues
    )
    worker = Worker(app, config=config, events=bus)
    api = create_app(
        backend,
        settings=settings,
        kind_defaults={r.kind: r.options for r in app.registry},
        bus=bus,
        access_log=True,
        log_events=False,  # logged below for the whole run, the worker's shutdown included
    )
    server = _server(_uvicorn_config(api, settings))
    _install_signals(server, worker)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            worker.request_stop()

    async def work() -> None:
        try:
            await worker.run()
        finally:
            server.should_exit = True

    unsubscribe = log_job_events(bus)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(serve())
            group.create_task(work())
            group.create_task(_announce(server, banner))
    finally:
        unsubscribe()
        await app.aclose()


def up_command(
    *,
    host: HostOption = None,
    port: PortOption = None,
    database_url: DatabaseOption = None,
    app_spec: AppOption = None,
    insecure: InsecureOption = False,
) -> None:
    """API, dashboard and a worker in one process, on SQLite by default."""
    from conveyor.cli.demo import demo_app
    from conveyor.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    host = host or settings.host
    port = settings.port if port is None else port
    user_app = load_app(app_spec)
    url = resolve_database_url(database_url, user_app.configured_url if user_app else None)
    app = user_app or demo_app(url)
    asyncio.run(check_binding(url, host, insecure))
    sock = bind_socket(host, port)
    banner = welcome(host, port, url, app, demo=user_app is None)
    try:
        asyncio.run(run_up(app, url, sock, banner))
    finally:
        sock.close()
    typer.echo("stopped.", err=True)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("up")(up_command)
    app.command("api")(api_command)
