"""Fixtures of the CLI tests: a live API over SQLite and the ``conveyor`` command runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli.liveapi import Cli, LiveApi, serve

from conveyor.cli import _register_all

_registered = False


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveApi]:
    yield from serve(f"sqlite:///{tmp_path / 'cli.db'}", tokens_required=False)


@pytest.fixture
def secured_api(tmp_path: Path) -> Iterator[LiveApi]:
    yield from serve(f"sqlite:///{tmp_path / 'secured.db'}", tokens_required=True)


@pytest.fixture
def cli() -> Cli:
    global _registered
    if not _registered:
        _register_all()
        _registered = True
    return Cli()
