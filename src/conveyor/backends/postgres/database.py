"""The PostgreSQL engine's connection pool and its error boundary.

``Database`` owns the ``psycopg_pool.AsyncConnectionPool`` (autocommit connections, statements
prepared from their first use, orjson for jsonb) and is the one place where driver
exceptions become ``conveyor.errors``: ``async with db.cursor() as cur`` yields a dict-row
cursor and translates anything psycopg raises on the way out. Used by every other module
of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, TupleRow, dict_row
from psycopg.types.json import set_json_loads
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from conveyor.clock import Clock
from conveyor.database_url import mask_url
from conveyor.errors import BackendError, BackendUnavailable, ConfigurationError

log = logging.getLogger(__name__)

QUEUE_FULL_SQLSTATE = "CV001"
CONNECT_TIMEOUT = timedelta(seconds=5)


def conninfo_from_url(url: str) -> str:
    """A libpq URL from a Conveyor one: ``postgresql+psycopg://`` loses its ``+driver``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower().split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(scheme="postgresql"))


def display_url(url: str) -> str:
    """The URL for logs and ``Backend.url``: the password masked, and a user without one
    shown as ``user:***`` too, so the display never tells whether a password was set."""
    masked = mask_url(url)
    parts = urlsplit(masked)
    if parts.username is not None and parts.password is None:
        host = parts.netloc.rsplit("@", 1)[-1]
        masked = urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return masked


def is_connection_error(exc: BaseException) -> bool:
    """Trouble with the connection or the server, rather than with the statement."""
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)):
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    # 08: connection exception; 57P: operator intervention (shutdown, crash recovery).
    return sqlstate.startswith(("08", "57P"))


async def _configure(conn: AsyncConnection[TupleRow]) -> None:
    set_json_loads(orjson.loads, conn)
    # Job ids are handed out as canonical text; skip building uuid.UUID objects per row.
    conn.adapters.register_loader("uuid", TextLoader)
    await conn.execute(b"SET TIME ZONE 'UTC'", prepare=False)


class Database:
    def __init__(self, conninfo: str, *, clock: Clock | None, pool_min: int, pool_max: int) -> None:
        self.conninfo = conninfo
        self.clock = clock
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] | None = None
        self._pool_min = pool_min
        self._pool_max = pool_max
        self._checking: asyncio.Task[None] | None = None

    def now_param(self) -> datetime | None:
        """The ``%(now)s`` of every statement: None means the server's clock."""
        return None if self.clock is None else self.clock.now().astimezone(UTC)

    async def open(self) -> None:
        pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            self.conninfo,
            min_size=self._pool_min,
            max_size=self._pool_max,
            open=False,
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "connect_timeout": int(CONNECT_TIMEOUT.total_seconds()),
            },
            configure=_configure,
            timeout=CONNECT_TIMEOUT.total_seconds(),
            reconnect_timeout=30.0,
            name="conveyor",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT.total_seconds())
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            raise BackendUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checking
        if pool is not None:
            await pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """A pooled autocommit connection; driver errors come out as ``conveyor.errors``."""
        pool = self._pool
        if pool is None:
            raise BackendError("the PostgreSQL backend is not open (call open() first)")
        try:
            async with pool.connection() as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as exc:
            raise self.translate(exc) from exc

    @contextlib.asynccontextmanager
    async def cursor(self) -> AsyncIterator[AsyncCursor[DictRow]]:
        async with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            yield cur

    def translate(self, exc: Exception) -> BackendError:
        if is_connection_error(exc):
            self._check_pool_soon()
            return BackendUnavailable(f"PostgreSQL is unavailable: {exc}")
        return BackendError(f"PostgreSQL refused the request: {exc}")

    def _check_pool_soon(self) -> None:
        # After a server restart every idle connection in the pool is dead; one pool check
        # discards them all, so the next calls get fresh connections instead of each failing.
        if self._pool is None or (self._checking is not None and not self._checking.done()):
            return
        self._checking = asyncio.get_running_loop().create_task(self._check_pool())

    async def _check_pool(self) -> None:
        pool = self._pool
        if pool is None:
            return
        try:
            await pool.check()
        except Exception:  # a check that fails must not crash anything; calls will retry
            log.debug("pool check failed", exc_info=True)
