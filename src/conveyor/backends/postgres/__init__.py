"""The PostgreSQL engine (``postgresql://``, ``postgres://``, ``postgresql+psycopg://``):
psycopg 3 async with a connection pool, for many API and worker processes on many machines.
See ``backend.py``; needs the ``conveyor[postgres]`` extra."""

from __future__ import annotations

from conveyor.backends.postgres.backend import PostgresBackend

__all__ = ["PostgresBackend"]
