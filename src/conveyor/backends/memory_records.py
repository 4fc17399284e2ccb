"""The in-memory ``RecordStore``: versioned JSON records with compare-and-set, in a dict.

Composed into ``MemoryBackend`` (and usable on its own in unit tests of the webhook endpoint
store and circuit breakers). Single event loop: every method reads and writes without an
``await`` in between, so each call is atomic with respect to every other coroutine; that is
what makes the compare-and-set here as strong as a SQL ``UPDATE ... WHERE version = ?``.
Values are deep-copied through JSON on the way in and out, so callers can never mutate stored
state by holding on to a dict, and so the memory engine returns exactly what a SQL or Redis
engine would (tuples become lists ...).
"""

from __future__ import annotations

from typing import cast

import orjson

from conveyor.backend import Record
from conveyor.clock import Clock, SystemClock
from conveyor.errors import InvalidPayload, RecordConflict
from conveyor.jobs import JSONObject


def _copy(value: JSONObject) -> JSONObject:
    try:
        copied = orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidPayload(f"record value is not JSON-serialisable: {exc}") from exc
    if not isinstance(copied, dict):
        raise InvalidPayload("a record value must be a JSON object")
    return cast(JSONObject, copied)


class MemoryRecords:
    """``RecordStore`` over a dict keyed by ``(namespace, key)``."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._records: dict[tuple[str, str], Record] = {}

    async def get_record(self, namespace: str, key: str) -> Record | None:
        record = self._records.get((namespace, key))
        return None if record is None else self._export(record)

    async def list_records(self, namespace: str) -> list[Record]:
        found = [r for (ns, _), r in self._records.items() if ns == namespace]
        found.sort(key=lambda r: r.key)
        return [self._export(r) for r in found]

    async def put_record(
        self, namespace: str, key: str, value: JSONObject, expect_version: int | None = None
    ) -> Record:
        stored_value = _copy(value)  # validate before looking: a bad value changes nothing
        current = self._records.get((namespace, key))
        current_version = 0 if current is None else current.version
        if expect_version is not None and expect_version != current_version:
            raise RecordConflict(namespace, key)
        record = Record(
            namespace=namespace,
            key=key,
            value=stored_value,
            version=current_version + 1,
            updated_at=self._clock.now(),
        )
        self._records[(namespace, key)] = record
        return self._export(record)

    async def delete_record(self, namespace: str, key: str) -> bool:
        return self._records.pop((namespace, key), None) is not None

    @staticmethod
    def _export(record: Record) -> Record:
        return Record(
            namespace=record.namespace,
            key=record.key,
            value=_copy(record.value),
            version=record.version,
            updated_at=record.updated_at,
        )
