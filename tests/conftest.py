"""Suite-wide fixtures: real PostgreSQL and Redis servers (started once per session on
127.0.0.1), and one isolated store per test for every engine:

* ``sqlite_url``: a file in ``tmp_path``;
* ``postgres_url``: a fresh database cloned from a migrated template;
* ``redis_url``: a key prefix of its own on the shared server;
* ``memory_url``: ``memory://``.

A missing server skips its tests with the reason, or fails them when
``CONVEYOR_REQUIRE_SERVICES=1`` (CI), so no backend test can be skipped silently there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from tests.services import PostgresServer, RedisServer, ServiceMissing

S = TypeVar("S", PostgresServer, RedisServer)

REQUIRE_SERVICES = os.environ.get("CONVEYOR_REQUIRE_SERVICES", "") not in ("", "0", "false")
ENGINES = ("memory", "sqlite", "postgres", "redis")


def service_unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"CONVEYOR_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under CONVEYOR_REQUIRE_SERVICES a skip anywhere is a failure: turn skip marks into
    # failures so that nothing is skipped silently in CI.
    if not REQUIRE_SERVICES:
        return
    for item in items:
        for mark in item.iter_markers("skip"):
            reason = mark.kwargs.get("reason", "")
            item.add_marker(
                pytest.mark.xfail(reason=f"skipped under REQUIRE: {reason}", strict=True, run=False)
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CONVEYOR_REQUIRE_SERVICES=1: {report.longrepr}"


# ------------------------------------------------------------------------------ servers


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | PostgresServer]:
    """The session's PostgreSQL: a URL from the environment, or a throwaway cluster."""
    env = os.environ.get("CONVEYOR_TEST_POSTGRES_URL")
    if env:
        yield env
        return
    try:
        server = PostgresServer().init().start()
    except ServiceMissing as exc:
        service_unavailable(str(exc))
        return
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own (fsync on, durable across a crash), for tests
    that stop, kill or restart it."""
    yield from _own_server(lambda: PostgresServer(fsync=True).init().start())


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server of this test's own (``appendfsync always``), for tests that kill or
    restart it."""
    yield from _own_server(lambda: RedisServer(appendonly=True, appendfsync="always").start())


def _own_server(start: Callable[[], S]) -> Iterator[S]:
    try:
        server = start()
    except ServiceMissing as exc:
        service_unavailable(str(exc))
        raise
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    env = os.environ.get("CONVEYOR_TEST_REDIS_URL")
    if env:
        yield env
        return
    try:
        server = RedisServer().start()
    except ServiceMissing as exc:
        service_unavailable(str(exc))
        return
    try:
        yield server.url
    finally:
        server.destroy()


def _admin_dsn(server: str | PostgresServer) -> str:
    return server if isinstance(server, str) else server.url


def _db_dsn(server: str | PostgresServer, name: str) -> str:
    if isinstance(server, PostgresServer):
        return server.dsn(name)
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


_template_ready: dict[str, str] = {}
_db_counter = itertools.count()


def _make_template(server: str | PostgresServer) -> str:
    """Create (once per session) a database with Conveyor's schema, to clone per test."""
    import psycopg

    admin = _admin_dsn(server)
    if admin in _template_ready:
        return _template_ready[admin]
    name = f"conveyor_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    async def migrate() -> None:
        from conveyor.backends import open_backend

        backend = open_backend(_db_dsn(server, name), migrate=True)
        await backend.open()
        await backend.close()

    asyncio.run(migrate())
    _template_ready[admin] = name
    return name


@contextlib.contextmanager
def throwaway_database(server: str | PostgresServer, template: str | None = None) -> Iterator[str]:
    """A fresh database on ``server`` (cloned from ``template`` if given), dropped on exit;
    yields its URL."""
    import psycopg

    name = f"conveyor_t{os.getpid()}_{next(_db_counter)}"
    admin = _admin_dsn(server)
    clone = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{clone}')
    try:
        yield _db_dsn(server, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str | PostgresServer) -> Iterator[str]:
    """A database with Conveyor's schema, cloned from the session's migrated template."""
    with throwaway_database(postgres_server, _make_template(postgres_server)) as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in redis_server else "?"
    yield f"{redis_server}{sep}prefix={prefix}"
    import redis as redis_sync

    client = redis_sync.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conveyor.db'}"


@pytest.fixture
def memory_url() -> str:
    return "memory://"
