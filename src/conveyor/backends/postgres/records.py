"""The PostgreSQL engine's ``RecordStore``: versioned JSON records in ``conveyor_records``
(migration 0002), mixed into ``PostgresBackend``.

Every compare-and-set is one statement, so it is race-free without explicit locks or
transactions: create-only is ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, update-if-version
is ``UPDATE ... WHERE version = n RETURNING`` (PostgreSQL re-evaluates the ``WHERE`` on the
newest row version after waiting for a concurrent writer), and the unconditional write is
``INSERT ... ON CONFLICT DO UPDATE``. No row back means the condition did not hold:
``RecordConflict``, and nothing changed.
"""

from __future__ import annotations

from typing import cast

import orjson
import psycopg

from conveyor.backend import Record
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.queries import QUERIES
from conveyor.backends.postgres.rows import Row, utc
from conveyor.errors import InvalidPayload, RecordConflict
from conveyor.jobs import JSONObject

MAX_VERSION = 2**63 - 1  # the version column is a bigint


def _encode(value: JSONObject) -> str:
    """The value as JSON text, refused (``InvalidPayload``) before any statement runs."""
    if not isinstance(value, dict):
        raise InvalidPayload("a record value must be a JSON object")
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidPayload(f"record value is not JSON-serialisable: {exc}") from exc


def record_from_row(row: Row) -> Record:
    value = row["value"]  # jsonb, decoded by psycopg
    return Record(
        namespace=cast(str, row["namespace"]),
        key=cast(str, row["key"]),
        value=cast(JSONObject, value) if isinstance(value, dict) else {},
        version=int(cast(int, row["version"])),
        updated_at=utc(row["updated_at"]),
    )


class PostgresRecords:
    _db: Database

    async def get_record(self, namespace: str, key: str) -> Record | None:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.get_record, {"namespace": namespace, "key": key})
            row = await cur.fetchone()
        return None if row is None else record_from_row(row)

    async def list_records(self, namespace: str) -> list[Record]:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.list_records, {"namespace": namespace})
            rows = await cur.fetchall()
        return [record_from_row(row) for row in rows]

    async def put_record(
        self, namespace: str, key: str, value: JSONObject, expect_version: int | None = None
    ) -> Record:
        params: dict[str, object] = {
            "namespace": namespace,
            "key": key,
            "value": _encode(value),
            "now": self._db.now_param(),
        }
        if expect_version is None:
            query = QUERIES.upsert_record
        elif expect_version == 0:
            query = QUERIES.create_record
        elif 0 < expect_version <= MAX_VERSION:
            query = QUERIES.update_record
            params["expect_version"] = expect_version
        else:  # no stored version is negative or past bigint
            raise RecordConflict(namespace, key)
        async with self._db.cursor() as cur:
            try:
                await cur.execute(query, params)
            except psycopg.DataError as exc:  # e.g. "\u0000", which jsonb cannot hold
                raise InvalidPayload(f"PostgreSQL refused the record: {exc}") from exc
            row = await cur.fetchone()
        if row is None:
            raise RecordConflict(namespace, key)
        return record_from_row(row)

    async def delete_record(self, namespace: str, key: str) -> bool:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.delete_record, {"namespace": namespace, "key": key})
            row = await cur.fetchone()
        return row is not None
