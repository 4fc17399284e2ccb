"""SQLite-only behaviour, below the protocol: URLs, pragmas, schema and indexes, how values
are stored, migrations and busy handling. Multi-process tests are in
test_sqlite_processes.py."""

from __future__ import annotations

import importlib.resources
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from conveyor.backend import ClaimRequest, PurgeRequest
from conveyor.backends import open_backend
from conveyor.backends.sqlite import SQLiteBackend, connection
from conveyor.backends.sqlite.leases import claim_statement
from conveyor.backends.sqlite.migrations import latest_version
from conveyor.backends.sqlite.sql import query, split_script
from conveyor.clock import FrozenClock
from conveyor.errors import BackendUnavailable, ConfigurationError, MigrationError
from conveyor.jobs import NewJob, WorkerId

pytestmark = pytest.mark.sqlite
ACTORS = Path(__file__).with_name("sqlite_actors.py")


@pytest.fixture
async def sqlite(sqlite_url: str) -> AsyncIterator[SQLiteBackend]:
    backend = SQLiteBackend(sqlite_url, clock=FrozenClock())
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def raw(url: str) -> sqlite3.Connection:
    return sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)


# ----------------------------------------------------------------------------- URLs


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert SQLiteBackend("sqlite:///rel.db").path == tmp_path / "rel.db"
    assert SQLiteBackend(f"sqlite:///{tmp_path}/abs.db").path == tmp_path / "abs.db"
    assert str(tmp_path).startswith("/")  # so the URL above had four slashes
    assert isinstance(open_backend("sqlite:///rel.db"), SQLiteBackend)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/x.db",
        "sqlite://x.db",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///x.db?mode=ro",
        "sqlite:////no/such/dir/x.db",
        "postgresql:///x.db",
    ],
)
def test_bad_urls(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError):
        SQLiteBackend(url)


# ----------------------------------------------------------------------------- pragmas


async def test_pragmas(sqlite: SQLiteBackend, sqlite_url: str) -> None:
    with raw(sqlite_url) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    conn = connection.connect(sqlite.path)
    try:
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == connection.BUSY_TIMEOUT_MS
        assert conn.isolation_level is None  # transactions are explicit (BEGIN IMMEDIATE)
    finally:
        conn.close()


def test_sqlite_supports_returning() -> None:
    connection.check_version()
    assert sqlite3.sqlite_version_info >= (3, 35, 0)


def test_sql_files_are_package_data() -> None:
    root = importlib.resources.files("conveyor.backends.sqlite")
    names = {entry.name for entry in root.iterdir()}
    assert {"sql", "migrations"} <= names
    assert root.joinpath("migrations", "0001_init.sql").is_file()
    assert root.joinpath("sql", "claim.sql").is_file()


def test_split_script() -> None:
    script = "-- a comment; with a semicolon\nCREATE TABLE t (a TEXT DEFAULT ';');\n\nSELECT 1;\n"
    first, second = split_script(script)  # a leading comment stays with its statement
    assert first.endswith("CREATE TABLE t (a TEXT DEFAULT ';');") and second == "SELECT 1;"

    with pytest.raises(ValueError):
        split_script("SELECT 1;\nSELECT (")


# ----------------------------------------------------------------------------- schema


async def test_claim_and_rescue_use_their_indexes(sqlite: SQLiteBackend, sqlite_url: str) -> None:
    params = {"now": 0, "owner": "w", "expires_at": 0, "limit": 5, "queue_0": "a", "queue_1": "b"}
    with raw(sqlite_url) as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + claim_statement(2), params).fetchall()
        text = "\n".join(str(row[-1]) for row in plan)
        assert text.count("USING INDEX conveyor_jobs_claim") == 2, text
        rescue = conn.execute(
            "EXPLAIN QUERY PLAN " + query("rescue"),
            {"now": 0, "now_iso": "", "max_rescues": 3, "limit": 5},
        ).fetchall()
        assert any("conveyor_jobs_lease" in str(row[-1]) for row in rescue), rescue


async def test_claim_index_is_partial_on_waiting_statuses(
    sqlite: SQLiteBackend, sqlite_url: str
) -> None:
    guard = "WHERE status IN ('scheduled', 'queued', 'retrying')"
    with raw(sqlite_url) as conn:
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'conveyor_jobs_claim'"
        ).fetchone()
        partial = {r[1]: r[4] for r in conn.execute("PRAGMA index_list(conveyor_jobs)")}
    assert row is not None and guard in row[0] and partial["conveyor_jobs_claim"] == 1
    # The planner uses a partial index only when the query implies its predicate.
    assert guard.replace("WHERE ", "AND ") in query("claim_candidates")


async def test_times_are_integer_micros_and_json_is_text(
    sqlite: SQLiteBackend, sqlite_url: str
) -> None:
    [outcome] = await sqlite.enqueue([NewJob(kind="k", payload={"a": [1, "x"]})])
    with raw(sqlite_url) as conn:
        row = conn.execute(
            "SELECT typeof(run_at), typeof(created_at), run_at, typeof(payload), payload "
            "FROM conveyor_jobs WHERE id = ?",
            (outcome.job.id,),
        ).fetchone()
    assert row[:2] == ("integer", "integer")
    assert (
        row[2] == int(outcome.job.run_at.timestamp()) * 1_000_000 + outcome.job.run_at.microsecond
    )
    assert row[3] == "text" and row[4] == '{"a":[1,"x"]}'


async def test_purge_deletes_log_lines(sqlite: SQLiteBackend, sqlite_url: str) -> None:
    [outcome] = await sqlite.enqueue([NewJob(kind="k")])
    job_id = outcome.job.id
    await sqlite.append_log(job_id, ["one", "two"])
    await sqlite.cancel(job_id)
    assert sqlite._clock is not None
    clock = sqlite._clock
    assert isinstance(clock, FrozenClock)
    clock.advance(timedelta(days=8))
    assert await sqlite.purge(PurgeRequest()) == 1
    with raw(sqlite_url) as conn:
        assert conn.execute("SELECT count(*) FROM conveyor_job_logs").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM conveyor_jobs").fetchone()[0] == 0


# ----------------------------------------------------------------------------- migrations


async def test_migrate_false_refuses_a_missing_schema(sqlite_url: str) -> None:
    bare = SQLiteBackend(sqlite_url, migrate=False)
    with pytest.raises(MigrationError, match="no Conveyor schema"):
        await bare.open()
    migrating = SQLiteBackend(sqlite_url)
    await migrating.open()
    status = await migrating.migration_status()
    assert status.up_to_date and status.current == latest_version()
    assert (await migrating.migrate()).up_to_date  # idempotent
    await migrating.close()
    bare = SQLiteBackend(sqlite_url, migrate=False)
    await bare.open()
    assert (await bare.migration_status()).up_to_date
    await bare.close()


async def test_schema_newer_than_code_is_refused(sqlite: SQLiteBackend, sqlite_url: str) -> None:
    with raw(sqlite_url) as conn:
        conn.execute(
            "INSERT INTO conveyor_migrations (version, name, applied_at) VALUES (999, 'x', 0)"
        )
    for migrate in (True, False):
        with pytest.raises(MigrationError, match="newer"):
            await SQLiteBackend(sqlite_url, migrate=migrate).open()


# ----------------------------------------------------------------------------- busy


async def test_write_waits_for_another_processs_lock(
    sqlite: SQLiteBackend, sqlite_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, str(ACTORS), "hold-lock", sqlite_url, "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        [outcome] = await sqlite.enqueue([NewJob(kind="k")])  # waits, then succeeds
        assert outcome.created
    finally:
        assert holder.wait(timeout=10) == 0


async def test_busy_for_too_long_is_backend_unavailable(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(connection, "BUSY_RETRIES", 1)
    backend = SQLiteBackend(sqlite_url)
    await backend.open()
    holder = subprocess.Popen(
        [sys.executable, str(ACTORS), "hold-lock", sqlite_url, "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(BackendUnavailable) as caught:
            await backend.claim(ClaimRequest(worker=WorkerId("w"), queues=("q",), limit=1))
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    finally:
        assert holder.wait(timeout=10) == 0
        await backend.close()


async def test_every_write_transaction_begins_immediate(sqlite: SQLiteBackend) -> None:
    """No deferred write transaction that would have to upgrade its lock (huey#123)."""
    assert sqlite._db is not None and sqlite._db._writer is not None
    traced: list[str] = []
    sqlite._db._writer.set_trace_callback(traced.append)
    [outcome] = await sqlite.enqueue([NewJob(kind="k")])
    [claimed] = await sqlite.claim(ClaimRequest(worker=WorkerId("w"), queues=("default",), limit=1))
    await sqlite.renew([claimed.lease], timedelta(seconds=30))
    await sqlite.append_log(outcome.job.id, ["x"])
    await sqlite.release([claimed.lease])
    await sqlite.cancel(outcome.job.id)
    await sqlite.purge(PurgeRequest())
    sqlite._db._writer.set_trace_callback(None)
    begins = [s for s in traced if s.upper().startswith("BEGIN")]
    assert begins and all(s == "BEGIN IMMEDIATE" for s in begins), begins
    assert len(begins) == 7
    depth = 0
    for statement in traced:
        head = statement.split(None, 1)[0].upper()
        depth += head == "BEGIN"
        depth -= head in ("COMMIT", "ROLLBACK")
        assert depth == 1 or head in ("COMMIT", "ROLLBACK"), f"{statement!r} outside BEGIN"


async def test_a_cancelled_claim_releases_what_it_claimed(
    sqlite: SQLiteBackend, sqlite_url: str
) -> None:
    import asyncio

    [outcome] = await sqlite.enqueue([NewJob(kind="k")])
    holder = subprocess.Popen(
        [sys.executable, str(ACTORS), "hold-lock", sqlite_url, "0.4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        request = ClaimRequest(worker=WorkerId("w"), queues=("default",), limit=1)
        claiming = asyncio.create_task(sqlite.claim(request))
        await asyncio.sleep(0.1)  # the claim now waits for the lock on the writer thread
        claiming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claiming
    finally:
        assert holder.wait(timeout=10) == 0
    for _ in range(200):
        job = await sqlite.get(outcome.job.id)
        assert job is not None
        if job.status.value == "queued" and job.started_at is not None:
            break  # it was claimed (started_at is kept), then released
        await asyncio.sleep(0.01)
    assert job.started_at is not None, "the claim never ran: the test did not test anything"
    assert job.status.value == "queued" and job.attempts == 0 and job.lease_owner is None
    [again] = await sqlite.claim(request)
    assert again.job.id == outcome.job.id and again.job.attempts == 1
