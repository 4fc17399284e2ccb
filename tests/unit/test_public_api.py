"""The curated public API: ``__all__`` is sorted, and every name in it imports."""

from __future__ import annotations

import conveyor


def test_all_is_sorted() -> None:
    assert conveyor.__all__ == sorted(conveyor.__all__)


def test_every_public_name_imports() -> None:
    for name in conveyor.__all__:
        assert getattr(conveyor, name) is not None, name


def test_app_surface() -> None:
    from conveyor import Conveyor, Discard, JobContext, Retry, Task

    assert {Conveyor, Discard, JobContext, Retry, Task} <= {
        getattr(conveyor, n) for n in conveyor.__all__
    }
