"""``PostgresBackend``: the PostgreSQL engine for many API and worker processes on many
machines. Opened by ``conveyor.backends.open_backend`` for ``postgresql://`` URLs.

This module holds the lifecycle (pool, migrations, listener), the clock, wake-ups and the
engine-specific ``enqueue_in`` (transactional enqueue); the verbs live in ``jobstore.py``,
``admin.py`` and ``records.py``, the SQL in ``sql/`` and ``migrations/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from conveyor.backend import Capability, Enqueued, MigrationStatus
from conveyor.backends.postgres import migrations
from conveyor.backends.postgres.admin import PostgresAdmin
from conveyor.backends.postgres.database import Database, conninfo_from_url, display_url
from conveyor.backends.postgres.enqueue import enqueue_rows
from conveyor.backends.postgres.jobstore import PostgresJobStore
from conveyor.backends.postgres.listener import Listener
from conveyor.backends.postgres.queries import QUERIES
from conveyor.backends.postgres.records import PostgresRecords
from conveyor.backends.postgres.rows import utc
from conveyor.clock import Clock
from conveyor.errors import BackendError, ConveyorError
from conveyor.jobs import NewJob

LISTENER_FIRST_CONNECT = timedelta(seconds=5)


# No handoff inside a caller's transaction: a standing claim's row would stay locked until
# the caller commits (migrations/0004_handoff.sql). Local to that transaction.
_NO_HANDOFF = b"SELECT set_config('conveyor.handoff', 'off', true)"


class PostgresBackend(PostgresJobStore, PostgresAdmin, PostgresRecords):
    """Jobs in PostgreSQL: ``FOR UPDATE SKIP LOCKED`` claims, LISTEN/NOTIFY wake-ups,
    transactional enqueue (``enqueue_in``), advisory-locked migrations, and versioned
    records (``RecordStore``) with single-statement compare-and-set."""

    capabilities = frozenset(
        {
            Capability.NOTIFY,
            Capability.TRANSACTIONAL_ENQUEUE,
            Capability.MULTI_PROCESS,
            Capability.MULTI_HOST,
            Capability.HANDOFF,
        }
    )

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        pool_min: int = 1,
        pool_max: int = 10,
    ) -> None:
        if pool_min < 0 or pool_max < max(1, pool_min):
            raise ValueError("need 0 <= pool_min <= pool_max and pool_max >= 1")
        self.url = display_url(url)
        conninfo = conninfo_from_url(url)
        self._db = Database(conninfo, clock=clock, pool_min=pool_min, pool_max=pool_max)
        self._migrate_on_open = migrate
        self._listener = Listener(conninfo, LISTENER_FIRST_CONNECT)
        self._forgetting: set[asyncio.Future[None]] = set()
        self._delivered: set[str] = set()
        self.clock = clock

    @property
    def listener(self) -> Listener:
        """The LISTEN connection's state (``connected``, ``connections``), for readiness
        checks and tests."""
        return self._listener

    async def open(self) -> None:
        await self._db.open()
        try:
            if self._migrate_on_open:
                await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._listener.stop()
        await asyncio.gather(*self._forgetting, return_exceptions=True)
        await self._db.close()

    async def migrate(self) -> MigrationStatus:
        async with self._db.connection() as conn:
            return await migrations.migrate(conn)

    async def migration_status(self) -> MigrationStatus:
        async with self._db.connection() as conn:
            return await migrations.status(conn)

    async def now(self) -> datetime:
        if self.clock is not None:
            return utc(self.clock.now())
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.now)
            row = await cur.fetchone()
        if row is None:
            raise BackendError("PostgreSQL returned no time")
        return utc(row["now"])

    async def wait_for_work(self, queues: Sequence[str], timeout: timedelta) -> bool:
        await self._listener.ensure_started()
        return await self._listener.wait(queues, timeout)

    async def enqueue_in(
        self, conn: psycopg.AsyncConnection[object], jobs: Sequence[NewJob]
    ) -> list[Enqueued]:
        """Enqueue inside the caller's transaction on ``conn`` (RELIABILITY.md, promise 2):
        the jobs become visible, and listeners are notified, only when that transaction
        commits; they vanish if it rolls back. Inside an open transaction it runs under a
        savepoint, so a refusal (``QueueFull``) leaves the caller's transaction usable; on an
        autocommit connection outside any transaction it is a transaction of its own."""
        if not jobs:
            return []
        try:
            if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
                # Our statement opens the caller's implicit transaction; conn.transaction()
                # here would BEGIN and COMMIT one of its own instead.
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(_NO_HANDOFF)
                    return await enqueue_rows(cur, jobs, self._db)
            async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(_NO_HANDOFF)
                return await enqueue_rows(cur, jobs, self._db)
        except ConveyorError:
            raise
        except psycopg.Error as exc:
            raise self._db.translate(exc) from exc
