"""Engines behind the ``Backend`` protocol, opened by URL scheme. Drivers are optional extras
imported lazily here, so ``import conveyor`` needs none of them.

Called by the app, the worker and the API: ``backend = open_backend(url)``, then
``await backend.open()``.

URL forms (SQLAlchemy's): ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs/path.db``,
``postgresql://user:pw@host:5432/db`` (also ``postgres://``, ``postgresql+psycopg://``),
``redis://host:6379/0`` (also ``rediss://``), with ``?prefix=name`` for the Redis key prefix.
"""

from __future__ import annotations

from conveyor.backend import Backend
from conveyor.clock import Clock
from conveyor.database_url import SCHEMES, mask_url, scheme_of
from conveyor.errors import ConfigurationError

__all__ = ["SCHEMES", "mask_url", "open_backend", "scheme_of"]


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
