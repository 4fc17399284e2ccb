"""Engines behind the ``Backend`` protocol, opened by URL scheme. Drivers are optional extras
imported lazily here, so ``import conveyor`` needs none of them.

Called by the app, the worker and the API: ``backend = open_backend(url)``, then
``await backend.open()``.

URL forms (SQLAlchemy's): ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
``postgresql://user:pw@host:5432/db`` (also ``postgres://``, ``postgresql+psycopg://``),
``redis://host:6379/0`` (also ``rediss://``), with ``?prefix=name`` for the Redis key prefix.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from conveyor.backend import Backend
from conveyor.clock import Clock
from conveyor.errors import ConfigurationError

SCHEMES = ("memory", "sqlite", "postgresql", "redis")


def scheme_of(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    base = scheme.split("+", 1)[0]
    if base == "postgres":
        base = "postgresql"
    if base == "rediss":
        base = "redis"
    if base not in SCHEMES:
        shown = scheme or "(none)"
        raise ConfigurationError(
            f"unknown database URL scheme {shown!r} in {mask_url(url)!r}; "
            "use sqlite:///file.db, postgresql://..., redis://... or memory://"
        )
    return base


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def open_backend(url: str, *, clock: Clock | None = None, migrate: bool = True) -> Backend:
    """Construct (not yet connect) the engine for ``url``. Call ``await backend.open()``."""
    scheme = scheme_of(url)
    try:
        if scheme == "memory":
            from conveyor.backends.memory import MemoryBackend

            return MemoryBackend(clock=clock)
        if scheme == "sqlite":
            from conveyor.backends.sqlite import SQLiteBackend

            return SQLiteBackend(url, clock=clock, migrate=migrate)
        if scheme == "postgresql":
            from conveyor.backends.postgres import PostgresBackend

            return PostgresBackend(url, clock=clock, migrate=migrate)
        from conveyor.backends.redis import RedisBackend

        return RedisBackend(url, clock=clock, migrate=migrate)
    except ImportError as exc:
        extra = {"postgresql": "postgres", "redis": "redis"}.get(scheme, scheme)
        raise ConfigurationError(
            f"the {scheme} backend needs an extra: pip install 'conveyor[{extra}]' ({exc})"
        ) from exc
