"""The Redis engine's plumbing: URL options, the connection pool, the Lua scripts and the
translation of redis-py exceptions into ``conveyor.errors``.

Used by every other module of ``conveyor.backends.redis``; nothing outside the package.
Each ``.lua`` file in ``lua/`` is one atomic state change. ``prelude.lua`` is prepended to
each at load time, so shared steps (index and counter upkeep) are written once; redis-py's
``register_script`` sends them with EVALSHA and loads them again after a server restart
(which empties the script cache).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from conveyor.clock import Clock, to_micros
from conveyor.errors import BackendError, BackendUnavailable, ConfigurationError

SCRIPTS = (
    "append_log",
    "cancel",
    "claim",
    "complete",
    "enqueue",
    "fail",
    "progress",
    "purge",
    "record_list",
    "record_put",
    "registry",
    "release",
    "renew",
    "requeue",
    "rescue",
    "standby_end",
    "stats",
)
_TRUE = ("1", "true", "yes", "on")
Reply = bytes | int | list["Reply"] | None


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """What the URL says: where to connect (our own query options removed) and how."""

    connect_url: str
    prefix: str
    strict: bool


def parse_url(url: str) -> RedisOptions:
    """``redis://host:port/db?prefix=name&strict=1`` (also ``rediss://``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigurationError(f"not a Redis URL: scheme {parts.scheme!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("prefix", "strict")}
    rest = [(k, v) for k, v in query if k not in ("prefix", "strict")]
    prefix = ours.get("prefix", "conveyor") or "conveyor"
    if any(c in prefix for c in " *?[]\\"):
        raise ConfigurationError(f"Redis key prefix {prefix!r} must not contain spaces or globs")
    connect = urlunsplit(parts._replace(query=urlencode(rest)))
    return RedisOptions(connect, prefix, ours.get("strict", "").lower() in _TRUE)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Driver exceptions become conveyor errors at the method boundary, chained."""
    try:
        yield
    except (rexc.ConnectionError, rexc.TimeoutError) as exc:  # BusyLoadingError included
        raise BackendUnavailable(f"Redis is unreachable: {exc}") from exc
    except rexc.ResponseError as exc:
        text = str(exc)
        if text.startswith(("LOADING", "MASTERDOWN", "READONLY", "MISCONF", "TRYAGAIN")):
            raise BackendUnavailable(f"Redis cannot serve writes right now: {text}") from exc
        raise BackendError(f"Redis refused a command: {text}") from exc
    except rexc.RedisError as exc:
        raise BackendError(f"Redis error: {exc}") from exc


def load_script_text(name: str) -> str:
    folder = resources.files("conveyor.backends.redis") / "lua"
    prelude = (folder / "prelude.lua").read_text("utf-8")
    return prelude + "\n" + (folder / f"{name}.lua").read_text("utf-8")


class RedisCore:
    """One pool and the registered scripts; shared by the backend's parts."""

    def __init__(self, options: RedisOptions, clock: Clock | None) -> None:
        self.options = options
        self.prefix = options.prefix
        self.clock = clock
        # A blocking pool: past max_connections a call waits for a free connection instead
        # of failing with "Too many connections" under a burst of concurrent calls.
        pool = aioredis.BlockingConnectionPool.from_url(
            options.connect_url,
            max_connections=64,
            timeout=30,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
            retry_on_error=[rexc.ConnectionError, rexc.TimeoutError],
            decode_responses=False,
            socket_connect_timeout=5,
            socket_keepalive=True,
        )
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._scripts = {
            name: self.client.register_script(load_script_text(name)) for name in SCRIPTS
        }

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def now_arg(self) -> str:
        return "" if self.clock is None else str(to_micros(self.clock.now()))

    async def run(self, script: str, *args: str | int | bytes) -> Reply:
        """Run one script: ARGV[1] prefix, ARGV[2] the clock, then ``args``."""
        with translated():
            reply: Reply = await self._scripts[script](args=[self.prefix, self.now_arg(), *args])
        return reply

    async def run_in_transaction(
        self, script: str, calls: Sequence[Sequence[str | int | bytes]]
    ) -> list[Reply]:
        """Run a script several times in one MULTI/EXEC: nothing else runs in between."""
        now = self.now_arg()
        with translated():
            async with self.client.pipeline(transaction=True) as pipe:
                for args in calls:
                    await self._scripts[script](args=[self.prefix, now, *args], client=pipe)
                replies: list[Reply] = await pipe.execute()
        return replies

    async def load_scripts(self) -> None:
        with translated():
            for script in self._scripts.values():
                script.sha = await self.client.script_load(script.script)

    async def close(self) -> None:
        with contextlib.suppress(rexc.RedisError, OSError):
            await self.client.aclose()
            await self.client.connection_pool.disconnect()
