"""Fixtures for the PostgreSQL engine's own tests (assertions about SQL rows, migrations,
LISTEN/NOTIFY and server restarts; the shared behaviour is in the conformance suite)."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from tests.services import PostgresServer

from conveyor.backends.postgres import PostgresBackend

_counter = itertools.count()


def admin_url(server: str | PostgresServer) -> str:
    return server if isinstance(server, str) else server.url


def database_url(server: str | PostgresServer, name: str) -> str:
    if isinstance(server, PostgresServer):
        return server.dsn(name)
    base, _, _ = server.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def empty_database_url(postgres_server: str | PostgresServer) -> Iterator[str]:
    """A database with no Conveyor schema at all (not cloned from the migrated template)."""
    name = f"conveyor_empty_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    admin = admin_url(postgres_server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(postgres_server, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    """An opened backend on the server's own clock (NOTIFY and timing tests)."""
    backend = PostgresBackend(postgres_url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
