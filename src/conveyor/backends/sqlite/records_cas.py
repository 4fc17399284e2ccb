"""The ``RecordStore`` seam on SQLite: versioned JSON records with compare-and-set.

Called by ``SQLiteBackend``: ``put_record`` and ``delete_record`` on the writer thread inside
``BEGIN IMMEDIATE`` (so "read the version, compare, write" is atomic across processes: no
other writer can run in between), the reads on a reader thread.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from conveyor.backend import Record
from conveyor.backends.sqlite.rows import Row, dump_json, from_micros, load_object
from conveyor.backends.sqlite.sql import query
from conveyor.clock import to_micros
from conveyor.errors import InvalidPayload, RecordConflict
from conveyor.jobs import JSONObject


def get_record(conn: sqlite3.Connection, namespace: str, key: str) -> Record | None:
    row = conn.execute(query("record_get"), (namespace, key)).fetchone()
    return None if row is None else _record(row)


def list_records(conn: sqlite3.Connection, namespace: str) -> list[Record]:
    return [_record(row) for row in conn.execute(query("record_list"), (namespace,)).fetchall()]


def put_record(
    conn: sqlite3.Connection,
    *,
    namespace: str,
    key: str,
    value: JSONObject,
    expect_version: int | None,
    now: datetime,
) -> Record:
    if not isinstance(value, dict):
        raise InvalidPayload("a record value must be a JSON object")
    text = dump_json(value)  # validated before looking: a bad value changes nothing
    row = conn.execute(query("record_get"), (namespace, key)).fetchone()
    current = 0 if row is None else int(row[3])
    if expect_version is not None and expect_version != current:
        raise RecordConflict(namespace, key)
    params = {
        "namespace": namespace,
        "key": key,
        "value": text,
        "version": current + 1,
        "now": to_micros(now),
    }
    conn.execute(query("record_upsert"), params)
    return Record(
        namespace=namespace,
        key=key,
        value=load_object(text) or {},
        version=current + 1,
        updated_at=from_micros(to_micros(now)),
    )


def delete_record(conn: sqlite3.Connection, namespace: str, key: str) -> bool:
    return conn.execute(query("record_delete"), (namespace, key)).rowcount == 1


def _record(row: Row) -> Record:
    namespace, key, value, version, updated_at = row
    return Record(
        namespace=str(namespace),
        key=str(key),
        value=load_object(value) or {},
        version=int(version),
        updated_at=from_micros(int(updated_at)),
    )
