"""Migrations: concurrent first start, status, a schema newer than the code, table tuning."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from conveyor.backends import open_backend
from conveyor.backends.postgres import PostgresBackend
from conveyor.backends.postgres.migrations import latest_version
from conveyor.errors import MigrationError

pytestmark = pytest.mark.postgres


async def test_five_concurrent_opens_on_a_fresh_database(empty_database_url: str) -> None:
    backends = [PostgresBackend(empty_database_url) for _ in range(5)]
    try:
        await asyncio.gather(*(b.open() for b in backends))
        statuses = await asyncio.gather(*(b.migration_status() for b in backends))
        assert all(s.up_to_date and s.current == latest_version() for s in statuses)
    finally:
        await asyncio.gather(*(b.close() for b in backends))
    async with await psycopg.AsyncConnection.connect(empty_database_url) as conn:
        cur = await conn.execute(
            "SELECT version, count(*) FROM conveyor_migrations GROUP BY 1 ORDER BY 1"
        )
        rows = await cur.fetchall()
    assert rows == [(v, 1) for v in range(1, latest_version() + 1)]


async def test_status_before_and_after_migrate(empty_database_url: str) -> None:
    backend = PostgresBackend(empty_database_url, migrate=False)
    await backend.open()
    try:
        before = await backend.migration_status()
        assert (before.current, before.up_to_date) == (0, False)
        after = await backend.migrate()
        assert after.up_to_date and after == await backend.migration_status()
        assert (await backend.migrate()) == after
    finally:
        await backend.close()


async def test_schema_newer_than_code_is_refused(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO conveyor_migrations (version, name) VALUES (%s, 'future.sql')",
            (latest_version() + 1,),
        )
    backend = PostgresBackend(postgres_url)
    with pytest.raises(MigrationError, match="newer"):
        await backend.open()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
async def test_url_schemes(postgres_url: str, scheme: str) -> None:
    url = scheme + postgres_url.removeprefix("postgresql")
    backend = open_backend(url)
    assert isinstance(backend, PostgresBackend)
    await backend.open()
    try:
        assert (await backend.migration_status()).up_to_date
    finally:
        await backend.close()


async def test_jobs_table_is_tuned_for_churn(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'jobs'")
        row = await cur.fetchone()
    assert row is not None
    options = dict(o.split("=", 1) for o in row[0])
    assert int(options["fillfactor"]) < 100
    assert float(options["autovacuum_vacuum_scale_factor"]) <= 0.01
