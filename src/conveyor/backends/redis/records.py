"""Versioned JSON records on Redis (the ``RecordStore`` seam): webhook endpoints, circuit
breakers and other state that built-in handlers share across processes.

Keys (under the prefix): ``rec:<namespace>:<key>`` hash with ``value`` (JSON), ``version``
and ``updated_at`` (micros); ``recs:<namespace>`` sorted set of the namespace's keys, all
scores 0, so ordered byte by byte for ``list_records``. In key names the namespace has
``%`` and ``:`` percent-escaped, so the first ``:`` after it always ends it and no two
(namespace, key) pairs share a Redis key. The compare-and-set write is one Lua script
(``lua/record_put.lua``): the version check, the write and the index entry are atomic.
Used by ``RedisBackend`` (mixed in).
"""

from __future__ import annotations

from typing import cast

import orjson

from conveyor.backend import Record
from conveyor.backends.redis.codec import at
from conveyor.backends.redis.connection import RedisCore, translated
from conveyor.backends.redis.store import as_bytes, as_list
from conveyor.errors import BackendError, InvalidPayload, RecordConflict
from conveyor.jobs import JSONObject


def escaped(namespace: str) -> str:
    """The namespace as it appears in key names: no ``:`` left in it."""
    return namespace.replace("%", "%25").replace(":", "%3A")


def _encode(value: JSONObject) -> bytes:
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise InvalidPayload(f"record value is not JSON-serialisable: {exc}") from exc
    if not encoded.startswith(b"{"):  # callers outside mypy's reach may pass anything
        raise InvalidPayload("a record value must be a JSON object")
    return encoded


def _record(namespace: str, key: str, value: bytes, version: bytes, updated_at: bytes) -> Record:
    decoded: JSONObject = orjson.loads(value)
    return Record(
        namespace=namespace,
        key=key,
        value=decoded,
        version=int(version),
        updated_at=at(updated_at),
    )


class RedisRecords:
    """``RecordStore`` on Redis. ``_core`` is set by ``RedisBackend``."""

    _core: RedisCore

    def _record_key(self, namespace: str, key: str) -> str:
        return self._core.key("rec", escaped(namespace), key)

    async def get_record(self, namespace: str, key: str) -> Record | None:
        with translated():
            value, version, updated_at = cast(
                "list[bytes | None]",
                await self._core.client.hmget(
                    self._record_key(namespace, key), ["value", "version", "updated_at"]
                ),
            )
        if value is None or version is None or updated_at is None:
            return None
        return _record(namespace, key, value, version, updated_at)

    async def list_records(self, namespace: str) -> list[Record]:
        flat = [
            as_bytes(item)
            for item in as_list(await self._core.run("record_list", escaped(namespace)))
        ]
        return [
            _record(namespace, flat[i].decode(), flat[i + 1], flat[i + 2], flat[i + 3])
            for i in range(0, len(flat), 4)
        ]

    async def put_record(
        self, namespace: str, key: str, value: JSONObject, expect_version: int | None = None
    ) -> Record:
        encoded = _encode(value)  # validate first: a bad value changes nothing
        reply = await self._core.run(
            "record_put",
            escaped(namespace),
            key,
            encoded,
            "" if expect_version is None else expect_version,
        )
        if reply == 0:
            raise RecordConflict(namespace, key)
        written = as_list(reply)
        if len(written) != 2:
            raise BackendError(f"unexpected reply from record_put: {reply!r}")
        return _record(namespace, key, encoded, as_bytes(written[0]), as_bytes(written[1]))

    async def delete_record(self, namespace: str, key: str) -> bool:
        with translated():
            async with self._core.client.pipeline(transaction=True) as pipe:
                pipe.delete(self._record_key(namespace, key))
                pipe.zrem(self._core.key("recs", escaped(namespace)), key)
                deleted, _ = await pipe.execute()
        return int(deleted) == 1
