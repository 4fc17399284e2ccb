"""Unit tests of identifiers: UUIDv7 layout (RFC 9562), monotonic order, tokens."""

from __future__ import annotations

import time
import uuid

import pytest

from conveyor import ids
from conveyor.ids import new_job_id, new_job_ids, new_token, uuid7


def test_uuid7_version_and_variant() -> None:
    for _ in range(1000):
        u = uuid7()
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert (u.int >> 76) & 0xF == 7
        assert (u.int >> 62) & 0b11 == 0b10


def test_uuid7_timestamp_is_now() -> None:
    before = time.time_ns() // 1_000_000
    u = uuid7()
    after = time.time_ns() // 1_000_000
    ms = u.int >> 80
    assert before <= ms <= after + 1  # +1: a counter overflow may borrow the next millisecond


def test_uuid7_monotonic_over_10k() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    texts = [str(u) for u in ids]
    assert texts == sorted(texts)  # text order is time order too


def test_job_id_parses_as_canonical_uuid7() -> None:
    job_id = new_job_id()
    parsed = uuid.UUID(job_id)
    assert str(parsed) == job_id and parsed.version == 7
    assert job_id == job_id.lower() and len(job_id) == 36


def test_job_ids_sort_by_creation() -> None:
    ids = [new_job_id() for _ in range(500)]
    assert ids == sorted(ids)


def test_job_id_batches_are_canonical_uuid7_in_order() -> None:
    # 10,000 in one batch: past one millisecond's 4,096 counter values, so the counter
    # borrows the next milliseconds, and what follows stays after it.
    before = new_job_id()
    batch = new_job_ids(10_000)
    after = [new_job_id(), str(uuid7()), *new_job_ids(3)]
    ordered = [before, *batch, *after]
    assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
    for text in (*batch[:50], *batch[-50:], *after):
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert new_job_ids(0) == []


def test_a_full_counter_carries_into_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    # The last batch used the millisecond's last counter value (0xFFF) and the clock has not
    # moved on (or went back): the next id borrows the next millisecond, for odd and even ones.
    for last_ms in (2**45 + 1, 2**45 + 2):
        monkeypatch.setattr(ids, "_last_ms", last_ms)
        monkeypatch.setattr(ids, "_seq", 0xFFF)
        first = uuid.UUID(new_job_id())
        assert first.int >> 80 == last_ms + 1 and (first.int >> 64) & 0xFFF == 0
        assert new_job_ids(2)[0] > str(first)


def test_job_id_batches_have_random_low_bits() -> None:
    lows = {uuid.UUID(text).int & ((1 << 62) - 1) for text in new_job_ids(1000)}
    assert len(lows) == 1000


def test_tokens_are_random_hex() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    token = new_token()
    assert len(token) == 32 and int(token, 16) >= 0
    assert len(new_token(32)) == 64
