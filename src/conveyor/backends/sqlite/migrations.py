"""Schema migrations of the SQLite engine: numbered ``migrations/NNNN_name.sql`` files,
recorded in ``conveyor_migrations``.

Called by ``SQLiteBackend.migrate`` / ``migration_status`` / ``open``. Every pending
migration is applied inside one ``BEGIN IMMEDIATE`` transaction that first re-reads the
current version, so several processes starting at once on one file are safe: the first one
migrates, the others wait for the write lock, then find nothing left to do.
"""

from __future__ import annotations

import sqlite3

from conveyor.backend import MigrationStatus
from conveyor.backends.sqlite.connection import run_immediate
from conveyor.backends.sqlite.sql import migration_files, split_script
from conveyor.clock import Clock, to_micros
from conveyor.errors import MigrationError

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS conveyor_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)
"""


def latest_version() -> int:
    return len(migration_files())


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conveyor_migrations'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM conveyor_migrations").fetchone()
    return int(row[0])


def status(conn: sqlite3.Connection) -> MigrationStatus:
    return MigrationStatus(current=current_version(conn), latest=latest_version())


def migrate(conn: sqlite3.Connection, clock: Clock) -> MigrationStatus:
    """Apply every pending migration in one write transaction; return the new status."""
    files = migration_files()

    def apply(tx: sqlite3.Connection) -> MigrationStatus:
        tx.execute(_CREATE_TABLE)
        current = current_version(tx)
        if current > len(files):
            raise MigrationError(
                f"the SQLite schema is at version {current}, newer than this Conveyor "
                f"({len(files)}): upgrade Conveyor"
            )
        for version, name, script in files[current:]:
            try:
                for statement in split_script(script):
                    tx.execute(statement)
            except sqlite3.Error as exc:
                raise MigrationError(f"SQLite migration {name} failed: {exc}") from exc
            tx.execute(
                "INSERT INTO conveyor_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, to_micros(clock.now())),
            )
        return MigrationStatus(current=len(files), latest=len(files))

    return run_immediate(conn, apply)


def require_current(conn: sqlite3.Connection) -> None:
    """For ``migrate=False``: refuse to run on a missing or outdated schema."""
    found = status(conn)
    if found.current == 0:
        raise MigrationError(
            "the SQLite database has no Conveyor schema: run `conveyor migrate` "
            "or open the backend with migrate=True"
        )
    if found.current < found.latest:
        raise MigrationError(
            f"the SQLite schema is at version {found.current}, this Conveyor needs "
            f"{found.latest}: run `conveyor migrate`"
        )
    if found.current > found.latest:
        raise MigrationError(
            f"the SQLite schema is at version {found.current}, newer than this Conveyor "
            f"({found.latest}): upgrade Conveyor"
        )
