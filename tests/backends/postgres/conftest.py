"""Fixtures for the PostgreSQL engine's own tests (assertions about SQL rows, migrations,
LISTEN/NOTIFY and server restarts; the shared behaviour is in the conformance suite)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from tests.conftest import throwaway_database
from tests.services import PostgresServer

from conveyor.backends.postgres import PostgresBackend


@pytest.fixture
def empty_database_url(postgres_server: str | PostgresServer) -> Iterator[str]:
    """A database with no Conveyor schema at all (not cloned from the migrated template)."""
    with throwaway_database(postgres_server) as url:
        yield url


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    """An opened backend on the server's own clock (NOTIFY and timing tests)."""
    backend = PostgresBackend(postgres_url)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
