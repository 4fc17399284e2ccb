"""``RedisBackend``: the ``Backend`` protocol on Redis, assembled from its parts.

Opened by ``conveyor.backends.open_backend("redis://host:port/db?prefix=name")``. The verbs
live in ``store`` (hot path), ``listing`` (list, requeue, purge), ``admin`` (queues, logs,
workers, tokens) and ``records`` (versioned JSON records); this module adds the lifecycle:
connecting, checking durability, the schema version key and wake-ups.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from conveyor.backend import Capability, MigrationStatus
from conveyor.backends.redis.admin import (
    RedisLogs,
    RedisQueueAdmin,
    RedisTokenStore,
    RedisWorkerRegistry,
)
from conveyor.backends.redis.codec import at
from conveyor.backends.redis.connection import RedisCore, parse_url, translated
from conveyor.backends.redis.durability import Durability, check_durability, read_durability
from conveyor.backends.redis.listing import RedisListing
from conveyor.backends.redis.notify import Notifier
from conveyor.backends.redis.records import RedisRecords
from conveyor.backends.redis.store import RedisJobStore
from conveyor.clock import Clock
from conveyor.database_url import mask_url
from conveyor.errors import MigrationError

SCHEMA_VERSION = 1


class RedisBackend(
    RedisJobStore,
    RedisListing,
    RedisQueueAdmin,
    RedisLogs,
    RedisWorkerRegistry,
    RedisTokenStore,
    RedisRecords,
):
    """All keys live under ``<prefix>:``; see docs/backends-redis.md for the layout."""

    capabilities = frozenset(
        {Capability.NOTIFY, Capability.MULTI_PROCESS, Capability.MULTI_HOST, Capability.HANDOFF}
    )

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        strict: bool = False,
    ) -> None:
        options = parse_url(url)
        self.url = mask_url(url)
        self._clock = clock
        self._migrate = migrate
        self._strict = strict or options.strict
        self._core = RedisCore(options, clock)
        self._notifier = Notifier(self._core)
        self.durability: Durability | None = None

    async def open(self) -> None:
        with translated():
            await self._core.load_scripts()
            self.durability = await read_durability(self._core.client)
        check_durability(self.durability, strict=self._strict, where=self.url)
        status = await (self.migrate() if self._migrate else self.migration_status())
        if status.current > status.latest:
            raise MigrationError(
                f"the Redis data under prefix {self._core.prefix!r} has schema version "
                f"{status.current}, newer than this Conveyor ({status.latest})"
            )

    async def close(self) -> None:
        await self._notifier.close()
        await self._core.close()

    async def migrate(self) -> MigrationStatus:
        # SET NX: safe when several processes open the same store at once.
        with translated():
            await self._core.client.set(self._core.key("schema"), SCHEMA_VERSION, nx=True)
        return await self.migration_status()

    async def migration_status(self) -> MigrationStatus:
        with translated():
            raw = await self._core.client.get(self._core.key("schema"))
        return MigrationStatus(current=int(raw or 0), latest=SCHEMA_VERSION)

    async def now(self) -> datetime:
        if self._clock is not None:
            return self._clock.now()
        with translated():
            seconds, micros = await self._core.client.time()
        return at(int(seconds) * 1_000_000 + int(micros))

    async def wait_for_work(self, queues: Sequence[str], timeout: timedelta) -> bool:
        return await self._notifier.wait(queues, timeout)
