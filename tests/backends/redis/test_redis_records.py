"""Redis specifics of the ``RecordStore`` seam that the conformance suite
(tests/backends/test_records.py) cannot see: the key layout, namespaces that contain the key
separator, the server clock, and refusal of values that are not JSON objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.codec import at
from conveyor.backends.redis.connection import parse_url
from conveyor.clock import FrozenClock, to_micros
from conveyor.errors import InvalidPayload, RecordConflict
from conveyor.jobs import JSONObject

pytestmark = pytest.mark.redis


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(parse_url(redis_url).connect_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def backend(redis_url: str) -> AsyncIterator[RedisBackend]:
    handle = RedisBackend(redis_url, clock=FrozenClock())
    await handle.open()
    try:
        yield handle
    finally:
        await handle.close()


async def test_key_layout(backend: RedisBackend, raw: aioredis.Redis, redis_url: str) -> None:
    prefix = parse_url(redis_url).prefix
    record = await backend.put_record("hooks", "ep-1", {"url": "https://x"}, expect_version=0)
    assert await raw.hgetall(f"{prefix}:rec:hooks:ep-1") == {
        "value": '{"url":"https://x"}',
        "version": "1",
        "updated_at": str(to_micros(record.updated_at)),
    }
    assert await raw.zrange(f"{prefix}:recs:hooks", 0, -1, withscores=True) == [("ep-1", 0.0)]
    assert await backend.delete_record("hooks", "ep-1") is True
    assert await raw.exists(f"{prefix}:rec:hooks:ep-1", f"{prefix}:recs:hooks") == 0


async def test_namespaces_with_separators_never_collide(
    backend: RedisBackend, raw: aioredis.Redis, redis_url: str
) -> None:
    prefix = parse_url(redis_url).prefix
    pairs = [("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c"), ("a", "b%3Ac")]
    for n, (namespace, key) in enumerate(pairs):
        created = await backend.put_record(namespace, key, {"n": n}, expect_version=0)
        assert created.version == 1  # a collision would have found version 1 already there
    for n, (namespace, key) in enumerate(pairs):
        got = await backend.get_record(namespace, key)
        assert got is not None and got.value == {"n": n}
    assert [r.key for r in await backend.list_records("a")] == ["b%3Ac", "b:c"]
    assert [r.value for r in await backend.list_records("a:b")] == [{"n": 0}]
    assert [r.value for r in await backend.list_records("a%3Ab")] == [{"n": 2}]
    assert await raw.exists(f"{prefix}:rec:a%3Ab:c", f"{prefix}:rec:a%253Ab:c") == 2


async def test_list_orders_keys_by_code_point(backend: RedisBackend) -> None:
    keys = ["é", "b", "B", "a1", "a", "10", "9", "ü"]
    for key in keys:
        await backend.put_record("ns", key, {})
    assert [r.key for r in await backend.list_records("ns")] == sorted(keys)


async def test_updated_at_comes_from_the_server_clock(redis_url: str, raw: aioredis.Redis) -> None:
    backend = RedisBackend(redis_url)  # no clock: the scripts read Redis TIME
    await backend.open()
    try:
        seconds, micros = await raw.time()
        before = at(seconds * 1_000_000 + micros)
        first = await backend.put_record("ns", "k", {"n": 1})
        second = await backend.put_record("ns", "k", {"n": 2}, expect_version=1)
        seconds, micros = await raw.time()
        after = at(seconds * 1_000_000 + micros)
        assert before <= first.updated_at <= second.updated_at <= after
        assert after - before < timedelta(seconds=5)
        assert await backend.get_record("ns", "k") == second
        with pytest.raises(RecordConflict):
            await backend.put_record("ns", "k", {"n": 3}, expect_version=1)
    finally:
        await backend.close()


async def test_values_that_are_not_json_objects_store_nothing(backend: RedisBackend) -> None:
    not_json: JSONObject = {"when": object()}  # type: ignore[dict-item]
    with pytest.raises(InvalidPayload):
        await backend.put_record("ns", "k", not_json)
    with pytest.raises(InvalidPayload):
        await backend.put_record("ns", "k", [1, 2])  # type: ignore[arg-type]
    assert await backend.get_record("ns", "k") is None
    assert await backend.list_records("ns") == []
