"""The SQLite engine's SQL, kept as data files (``sql/*.sql``, ``migrations/*.sql``) and
loaded once with ``importlib.resources``. Called by every module of the engine that runs a
statement.

Placeholders written as SQL comments are filled in here, never with caller data:
``/*job_columns*/`` (the column list ``rows.job_from_row`` reads), and, by the modules that
compose statements, ``/*candidates*/`` and ``/*filter*/``.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from importlib import resources

JOB_COLUMNS = (
    "id, queue, kind, payload, status, priority, run_at, attempts, max_attempts, timeout_us, "
    "idempotency_key, lease_owner, lease_expires_at, started_at, finished_at, result, errors, "
    "progress, trace, rescues, cancel_requested, created_at, updated_at"
)

_PACKAGE = "conveyor.backends.sqlite"


@cache
def query(name: str) -> str:
    """The statement in ``sql/<name>.sql``, with ``/*job_columns*/`` expanded."""
    text = resources.files(_PACKAGE).joinpath("sql", f"{name}.sql").read_text("utf-8")
    return text.replace("/*job_columns*/", JOB_COLUMNS)


def migration_files() -> list[tuple[int, str, str]]:
    """``(version, name, script)`` for every ``migrations/NNNN_name.sql``, in order."""
    found: list[tuple[int, str, str]] = []
    folder = resources.files(_PACKAGE).joinpath("migrations")
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, _ = entry.name.partition("_")
        found.append((int(number), entry.name, entry.read_text("utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"SQLite migrations are not numbered 1..n: {versions}")
    return found


def split_script(script: str) -> list[str]:
    """Split a script into statements, so that they can run inside one transaction
    (``executescript`` would commit first). Uses SQLite's own notion of completeness."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if _has_code(statement):
                statements.append(statement)
            buffer = ""
    if _has_code(buffer):
        raise ValueError(f"incomplete SQL statement at the end of a script: {buffer.strip()!r}")
    return statements


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())
