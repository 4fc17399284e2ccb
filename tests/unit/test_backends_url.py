"""Unit tests of backend URL handling: scheme aliases, password masking, unknown schemes."""

from __future__ import annotations

import pytest

from conveyor.backends import mask_url, open_backend, scheme_of
from conveyor.backends.memory import MemoryBackend
from conveyor.clock import FrozenClock
from conveyor.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("memory://", "memory"),
        ("sqlite:///relative.db", "sqlite"),
        ("sqlite:////abs/path.db", "sqlite"),
        ("postgresql://u:p@localhost:5432/db", "postgresql"),
        ("postgres://localhost/db", "postgresql"),
        ("postgresql+psycopg://localhost/db", "postgresql"),
        ("POSTGRESQL://localhost/db", "postgresql"),
        ("redis://localhost:6379/0", "redis"),
        ("rediss://localhost:6380/0?prefix=x", "redis"),
    ],
)
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


@pytest.mark.parametrize("url", ["mysql://u:hunter2@h/db", "nonsense", "", "http://x"])
def test_unknown_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        scheme_of(url)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError):
        open_backend(url)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:secret@db:5432/app", "postgresql://user:***@db:5432/app"),
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://user@db/app", "postgresql://user@db/app"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("memory://", "memory://"),
        (
            "postgresql://u:p%40ss@db/app?sslmode=require",
            "postgresql://u:***@db/app?sslmode=require",
        ),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


async def test_open_memory_backend_uses_given_clock() -> None:
    clock = FrozenClock()
    backend = open_backend("memory://", clock=clock)
    assert isinstance(backend, MemoryBackend)
    assert backend.url == "memory://"
    assert await backend.now() == clock.now()
