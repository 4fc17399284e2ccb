"""Conformance: the ``RecordStore`` seam (versioned JSON records with compare-and-set) that
built-in handlers use to share state across processes (webhook endpoints, circuit breakers).

The fixtures are local because ``RecordStore`` is not yet part of ``Backend``: ``memory`` runs
over ``MemoryRecords``, every other engine in ``RECORD_ENGINES`` opens ``open_backend`` on the
per-test ``<engine>_url`` (tests/conftest.py). Adding an engine is adding its name there. Once
every engine implements ``RecordStore``, swap these for the suite's ``backend`` (and
``records_factory`` for ``backend_factory``) and every test here runs unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest

from conveyor.backend import Backend, RecordStore
from conveyor.backends import open_backend
from conveyor.backends.memory_records import MemoryRecords
from conveyor.clock import FrozenClock
from conveyor.errors import RecordConflict

RecordsFactory = Callable[[], Awaitable[RecordStore]]

RECORD_ENGINES = ("memory", "sqlite", "postgres", "redis")


@pytest.fixture(params=[pytest.param(n, marks=getattr(pytest.mark, n)) for n in RECORD_ENGINES])
def records_engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def records_url(records_engine: str, request: pytest.FixtureRequest) -> str | None:
    """The per-test store's URL, None for memory. A sync fixture on purpose: the URL
    fixtures may run ``asyncio.run`` (the migrated PostgreSQL template)."""
    if records_engine == "memory":
        return None
    return str(request.getfixturevalue(f"{records_engine}_url"))


@pytest.fixture
async def records_factory(
    records_engine: str, records_url: str | None, clock: FrozenClock
) -> AsyncIterator[RecordsFactory]:
    """Opens another handle on the test's store (memory: the same instance every time, one
    process one store); every handle opened here is closed at the end of the test."""
    if records_url is None:
        store = MemoryRecords(clock=clock)

        async def same() -> RecordStore:
            return store

        yield same
        return

    url = records_url
    opened: list[Backend] = []

    async def factory() -> RecordStore:
        handle = open_backend(url, clock=clock)
        await handle.open()
        opened.append(handle)
        assert isinstance(handle, RecordStore), f"{records_engine} does not store records"
        return handle

    try:
        yield factory
    finally:
        for handle in opened:
            await handle.close()


@pytest.fixture
async def records(records_factory: RecordsFactory) -> RecordStore:
    return await records_factory()


async def test_get_missing_is_none(records: RecordStore) -> None:
    assert await records.get_record("ns", "absent") is None
    assert await records.list_records("ns") == []
    assert await records.delete_record("ns", "absent") is False


async def test_create_only_with_version_zero(records: RecordStore, clock: FrozenClock) -> None:
    created = await records.put_record("ns", "a", {"n": 1}, expect_version=0)
    assert created.version == 1 and created.value == {"n": 1}
    assert created.namespace == "ns" and created.key == "a"
    assert created.updated_at == clock.now()
    with pytest.raises(RecordConflict):
        await records.put_record("ns", "a", {"n": 99}, expect_version=0)
    stored = await records.get_record("ns", "a")
    assert stored is not None and stored.value == {"n": 1} and stored.version == 1


async def test_update_if_version_matches(records: RecordStore, clock: FrozenClock) -> None:
    await records.put_record("ns", "a", {"n": 1}, expect_version=0)
    clock.advance(timedelta(seconds=5))
    updated = await records.put_record("ns", "a", {"n": 2, "deep": {"x": [1, 2]}}, expect_version=1)
    assert updated.version == 2
    assert updated.value == {"n": 2, "deep": {"x": [1, 2]}}
    assert updated.updated_at == clock.now()
    assert await records.get_record("ns", "a") == updated


async def test_conflict_raises_and_changes_nothing(records: RecordStore) -> None:
    await records.put_record("ns", "a", {"n": 1}, expect_version=0)
    await records.put_record("ns", "a", {"n": 2}, expect_version=1)
    before = await records.get_record("ns", "a")
    for stale in (1, 3, 0):
        with pytest.raises(RecordConflict) as info:
            await records.put_record("ns", "a", {"n": -1}, expect_version=stale)
        assert info.value.namespace == "ns" and info.value.key == "a"
    assert await records.get_record("ns", "a") == before
    with pytest.raises(RecordConflict):
        await records.put_record("ns", "missing", {"n": 1}, expect_version=1)
    assert await records.get_record("ns", "missing") is None


async def test_unconditional_upsert_bumps_version(records: RecordStore) -> None:
    first = await records.put_record("ns", "a", {"n": 1})
    second = await records.put_record("ns", "a", {"n": 2})
    assert (first.version, second.version) == (1, 2)
    assert second.value == {"n": 2}


async def test_list_sorted_by_key_within_namespace(records: RecordStore) -> None:
    for key in ("delta", "alpha", "charlie", "bravo"):
        await records.put_record("one", key, {"k": key})
    await records.put_record("two", "aardvark", {"k": "other"})
    listed = await records.list_records("one")
    assert [r.key for r in listed] == ["alpha", "bravo", "charlie", "delta"]
    assert all(r.namespace == "one" and r.value == {"k": r.key} for r in listed)
    assert [r.key for r in await records.list_records("two")] == ["aardvark"]


async def test_delete(records: RecordStore) -> None:
    await records.put_record("ns", "a", {"n": 1})
    await records.put_record("ns", "b", {"n": 2})
    assert await records.delete_record("ns", "a") is True
    assert await records.delete_record("ns", "a") is False
    assert await records.get_record("ns", "a") is None
    assert [r.key for r in await records.list_records("ns")] == ["b"]
    recreated = await records.put_record("ns", "a", {"n": 3}, expect_version=0)
    assert recreated.version == 1


async def test_returned_values_are_copies(records: RecordStore) -> None:
    value = {"items": [1, 2]}
    await records.put_record("ns", "a", value)
    value["items"].append(3)
    got = await records.get_record("ns", "a")
    assert got is not None and got.value == {"items": [1, 2]}
    got.value["items"] = []  # type: ignore[index]
    again = await records.get_record("ns", "a")
    assert again is not None and again.value == {"items": [1, 2]}


async def test_concurrent_cas_increments_all_land(records_factory: RecordsFactory) -> None:
    handles = [await records_factory() for _ in range(4)]
    await handles[0].put_record("ns", "counter", {"n": 0}, expect_version=0)
    conflicts = 0

    async def increment(store: RecordStore) -> None:
        nonlocal conflicts
        while True:
            current = await store.get_record("ns", "counter")
            assert current is not None
            await asyncio.sleep(0)  # let the others read the same version
            n = current.value["n"]
            assert isinstance(n, int)
            try:
                await store.put_record("ns", "counter", {"n": n + 1}, current.version)
                return
            except RecordConflict:
                conflicts += 1

    async with asyncio.TaskGroup() as group:
        for i in range(20):
            group.create_task(increment(handles[i % len(handles)]))
    final = await handles[0].get_record("ns", "counter")
    assert final is not None
    assert final.value == {"n": 20}
    assert final.version == 21
    assert conflicts > 0  # the race really happened, and CAS resolved it


async def test_concurrent_create_only_exactly_one_wins(records_factory: RecordsFactory) -> None:
    handles = [await records_factory() for _ in range(4)]

    async def create(i: int) -> int | None:
        try:
            await handles[i % len(handles)].put_record("ns", "once", {"by": i}, expect_version=0)
        except RecordConflict:
            return None
        return i

    outcomes = await asyncio.gather(*(create(i) for i in range(12)))
    winners = [i for i in outcomes if i is not None]
    assert len(winners) == 1
    stored = await handles[0].get_record("ns", "once")
    assert stored is not None and stored.version == 1 and stored.value == {"by": winners[0]}


async def test_concurrent_unconditional_upserts_all_count(records_factory: RecordsFactory) -> None:
    handles = [await records_factory() for _ in range(4)]
    await asyncio.gather(
        *(handles[i % len(handles)].put_record("ns", "hot", {"i": i}) for i in range(12))
    )
    stored = await handles[0].get_record("ns", "hot")
    assert stored is not None and stored.version == 12
