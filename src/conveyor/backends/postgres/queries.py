"""The SQL of the PostgreSQL engine, kept as data files (``sql/*.sql``, ``migrations/*.sql``)
and read once through ``importlib.resources``. Called by the engine's modules: ``QUERIES.x``
is the text of ``sql/x.sql`` as bytes (psycopg takes bytes queries, and bytes keep the SQL
out of Python string formatting)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def _sql(name: str) -> bytes:
    return resources.files(__package__).joinpath("sql", f"{name}.sql").read_bytes()


@dataclass(frozen=True, slots=True)
class Queries:
    enqueue: bytes
    enqueue_plain: bytes
    enqueue_one: bytes
    complete_claim: bytes
    complete_claim_standby: bytes
    standby_end: bytes
    renew: bytes
    fail: bytes
    release: bytes
    rescue: bytes
    cancel: bytes
    get: bytes
    job_exists: bytes
    list_jobs: bytes
    requeue: bytes
    set_progress: bytes
    purge: bytes
    stats: bytes
    configure_queue: bytes
    queue_settings: bytes
    append_log: bytes
    read_log: bytes
    upsert_worker: bytes
    list_workers: bytes
    remove_worker: bytes
    create_token: bytes
    list_tokens: bytes
    find_token: bytes
    revoke_token: bytes
    get_record: bytes
    list_records: bytes
    create_record: bytes
    update_record: bytes
    upsert_record: bytes
    delete_record: bytes
    now: bytes


def _load() -> Queries:
    return Queries(**{name: _sql(name) for name in Queries.__dataclass_fields__})


QUERIES = _load()


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: bytes


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped with this code, by version; versions are 1, 2, 3 ... without
    gaps (checked here, so a misnamed file fails loudly rather than being skipped)."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_bytes()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration files are not numbered 1..n: {[m.name for m in found]}")
    return tuple(found)
