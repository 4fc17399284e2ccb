"""Whether the Redis server keeps what it acknowledged. Checked by ``RedisBackend.open``.

Two settings lose acknowledged jobs outright, and are refused with ``strict``: an eviction
policy other than ``noeviction`` (Redis silently deletes keys under memory pressure,
sidekiq#4752) and no append-only file (a crash loses everything since the last RDB snapshot,
or everything when ``save`` is off too). ``appendfsync everysec`` loses up to about a second
of writes on a machine crash or power loss and ``no`` up to about 30 s: warned, not refused.
On servers where CONFIG is disabled (managed services), INFO is read instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis import exceptions as rexc

from conveyor.errors import ConfigurationError

log = logging.getLogger("conveyor.backends.redis")


@dataclass(frozen=True, slots=True)
class Durability:
    eviction_policy: str
    appendonly: bool
    appendfsync: str | None  # None: could not be read (CONFIG disabled)
    save: str | None  # the RDB schedule; "" when snapshots are off; None: unknown
    source: str  # "config" or "info"

    def problems(self) -> list[str]:
        """Settings under which Redis may drop jobs it acknowledged."""
        found: list[str] = []
        if self.eviction_policy != "noeviction":
            found.append(
                f"maxmemory-policy is {self.eviction_policy!r}: Redis may evict jobs when it "
                "runs out of memory; set maxmemory-policy noeviction"
            )
        if not self.appendonly:
            lost = "every job" if self.save == "" else "every job written since the last snapshot"
            found.append(
                f"appendonly is off: a crash or restart loses {lost}; "
                "set appendonly yes and appendfsync always (or everysec)"
            )
        return found

    def warnings(self) -> list[str]:
        if not self.appendonly:
            return []
        if self.appendfsync == "everysec":
            return ["appendfsync is everysec: a machine crash may lose up to ~1 s of writes"]
        if self.appendfsync == "no":
            return ["appendfsync is no: a machine crash may lose up to ~30 s of writes"]
        if self.appendfsync is None:
            return ["CONFIG is disabled, so appendfsync could not be checked"]
        return []


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_durability(client: aioredis.Redis) -> Durability:
    try:
        raw = await client.config_get("maxmemory-policy", "appendonly", "appendfsync", "save")
    except rexc.ResponseError:  # CONFIG renamed away or not permitted: read INFO
        persistence = await client.info("persistence")
        memory = await client.info("memory")
        return Durability(
            eviction_policy=_text(memory.get("maxmemory_policy", "unknown")),
            appendonly=int(persistence.get("aof_enabled", 0)) == 1,
            appendfsync=None,
            save=None,
            source="info",
        )
    config = {_text(k): _text(v) for k, v in raw.items()}
    return Durability(
        eviction_policy=config.get("maxmemory-policy", "unknown"),
        appendonly=config.get("appendonly", "no") == "yes",
        appendfsync=config.get("appendfsync"),
        save=config.get("save"),
        source="config",
    )


def check_durability(durability: Durability, *, strict: bool, where: str) -> None:
    """Log loudly what may lose jobs; with ``strict``, refuse to run on it."""
    problems = durability.problems()
    for problem in problems:
        log.warning("Redis at %s may LOSE ACKNOWLEDGED JOBS: %s", where, problem)
    for warning in durability.warnings():
        log.warning("Redis at %s: %s", where, warning)
    if strict and problems:
        raise ConfigurationError(
            f"Redis at {where} is not durable enough for strict mode: " + "; ".join(problems)
        )
