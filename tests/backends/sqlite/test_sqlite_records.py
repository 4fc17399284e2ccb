"""The RecordStore seam on SQLite (the conformance file tests/backends/test_records.py runs
over memory only for now): compare-and-set across two handles of one file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from conveyor.backends.sqlite import SQLiteBackend
from conveyor.clock import FrozenClock
from conveyor.errors import InvalidPayload, RecordConflict

pytestmark = pytest.mark.sqlite


@pytest.fixture
async def pair(sqlite_url: str) -> AsyncIterator[tuple[SQLiteBackend, SQLiteBackend, FrozenClock]]:
    clock = FrozenClock()
    first, second = SQLiteBackend(sqlite_url, clock=clock), SQLiteBackend(sqlite_url, clock=clock)
    await first.open()
    await second.open()
    try:
        yield first, second, clock
    finally:
        await first.close()
        await second.close()


async def test_records_compare_and_set(
    pair: tuple[SQLiteBackend, SQLiteBackend, FrozenClock],
) -> None:
    one, two, clock = pair
    assert await one.get_record("ns", "a") is None
    created = await one.put_record("ns", "a", {"n": 1}, expect_version=0)
    assert created.version == 1 and created.updated_at == clock.now()
    with pytest.raises(RecordConflict):
        await two.put_record("ns", "a", {"n": 9}, expect_version=0)
    clock.advance(timedelta(seconds=1))
    updated = await two.put_record("ns", "a", {"n": 2, "deep": {"x": [1, 2]}}, expect_version=1)
    assert updated.version == 2 and await one.get_record("ns", "a") == updated
    with pytest.raises(RecordConflict):
        await one.put_record("ns", "a", {"n": -1}, expect_version=1)
    assert (await one.put_record("ns", "a", {"n": 3})).version == 3  # unconditional
    with pytest.raises(RecordConflict):
        await one.put_record("ns", "missing", {"n": 1}, expect_version=1)
    assert await one.get_record("ns", "missing") is None


async def test_records_list_delete_and_bad_values(
    pair: tuple[SQLiteBackend, SQLiteBackend, FrozenClock],
) -> None:
    one, two, _ = pair
    for key in ("c", "a", "b"):
        await one.put_record("ns", key, {"k": key})
    await one.put_record("other", "z", {})
    assert [r.key for r in await two.list_records("ns")] == ["a", "b", "c"]
    assert await two.delete_record("ns", "b") is True
    assert await one.delete_record("ns", "b") is False
    with pytest.raises(InvalidPayload):
        await one.put_record("ns", "a", {"bad": {1, 2}})  # type: ignore[dict-item]
    assert (await one.get_record("ns", "a")) is not None


async def test_concurrent_create_only_one_wins(
    pair: tuple[SQLiteBackend, SQLiteBackend, FrozenClock],
) -> None:
    one, two, _ = pair
    results = await asyncio.gather(
        *(
            h.put_record("ns", "race", {"by": i}, expect_version=0)
            for i, h in enumerate([one, two] * 4)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, RecordConflict) for r in results if isinstance(r, BaseException))
