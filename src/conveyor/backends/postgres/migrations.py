"""Schema migrations of the PostgreSQL engine: numbered files in ``migrations/``, applied in
order, each recorded in ``conveyor_migrations``. Called by ``PostgresBackend.open`` and
``migrate``/``migration_status``.

Several processes may start at once on a fresh database: the whole run happens in one
transaction under ``pg_advisory_xact_lock``, so one process applies the migrations and the
others, once they get the lock, find them applied.
"""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from conveyor.backend import MigrationStatus
from conveyor.backends.postgres.queries import migrations
from conveyor.errors import MigrationError

# Any constant unique to Conveyor; pg_advisory_xact_lock(bigint).
MIGRATION_LOCK_KEY = 0x636F6E7665796F72  # "conveyor"

_CREATE_TABLE = b"""
CREATE TABLE IF NOT EXISTS conveyor_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
_TABLE_EXISTS = b"SELECT to_regclass('conveyor_migrations') IS NOT NULL"
_CURRENT = b"SELECT coalesce(max(version), 0) FROM conveyor_migrations"
_RECORD = b"INSERT INTO conveyor_migrations (version, name) VALUES (%s, %s)"


def latest_version() -> int:
    return len(migrations())


async def current_version(conn: AsyncConnection[TupleRow]) -> int:
    cur = await conn.execute(_TABLE_EXISTS)
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur = await conn.execute(_CURRENT)
    row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def status(conn: AsyncConnection[TupleRow]) -> MigrationStatus:
    return MigrationStatus(current=await current_version(conn), latest=latest_version())


async def migrate(conn: AsyncConnection[TupleRow]) -> MigrationStatus:
    """Apply every missing migration; raises ``MigrationError`` when the database's schema
    is newer than this code or a migration fails (then nothing of that run is kept)."""
    latest = latest_version()
    async with conn.transaction():
        await conn.execute(b"SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        await conn.execute(_CREATE_TABLE, prepare=False)
        current = await current_version(conn)
        if current > latest:
            raise MigrationError(
                f"the database schema is at version {current}, newer than this code "
                f"({latest}); upgrade Conveyor"
            )
        for migration in migrations()[current:]:
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql, prepare=False)
                    await conn.execute(_RECORD, (migration.version, migration.name))
            except Exception as exc:
                raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
    return MigrationStatus(current=max(current, latest), latest=latest)
