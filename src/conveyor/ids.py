"""Identifiers: UUIDv7 job ids (RFC 9562), time-ordered so id order is creation order, and
random tokens for leases and API secrets. Called by backends when they store a new job."""

from __future__ import annotations

import os
import secrets
import struct
import threading
import time
import uuid

from conveyor.jobs import JobId

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def _reserve(n: int) -> int:
    """Reserve ``n`` consecutive (millisecond, counter) pairs; returns the first as one 60-bit
    number, ``ms << 12 | counter``. The counter is seeded randomly each new millisecond (RFC
    9562 method 1, leaving room to count up) and a batch counts on from there: past 0xFFF it
    borrows the next millisecond, so ids stay monotonic within this process even when a
    large batch runs a few milliseconds ahead of the clock."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            _seq += 1
        first = (_last_ms << 12) + _seq  # + not |: a counter of 0x1000 carries into the ms
        last = first + n - 1
        _last_ms, _seq = last >> 12, last & 0xFFF
    return first


def _high_words(n: int) -> list[int]:
    """The first 64 bits of ``n`` fresh UUIDv7s: 48-bit ms timestamp, version 7, counter."""
    first = _reserve(n)
    return [(c >> 12) << 16 | 0x7000 | (c & 0xFFF) for c in range(first, first + n)]


def _uuid7_ints(n: int) -> list[int]:
    """``n`` UUIDv7 values as integers, in creation order: ``_high_words``, then the variant
    and 62 random bits."""
    rand = os.urandom(8 * n)
    mask = (1 << 62) - 1
    return [
        hi << 64 | 0b10 << 62 | int.from_bytes(rand[8 * i : 8 * i + 8], "big") & mask
        for i, hi in enumerate(_high_words(n))
    ]


def uuid7() -> uuid.UUID:
    """A UUIDv7 (see ``_reserve``)."""
    return uuid.UUID(int=_uuid7_ints(1)[0])


def new_job_id() -> JobId:
    [job_id] = new_job_ids(1)
    return job_id


def new_job_ids(n: int) -> list[JobId]:
    """``n`` fresh job ids in creation order, as one batch: one lock, one ``urandom`` and
    two hex conversions in C for the whole batch (half the cost of formatting each id from
    an integer)."""
    if n <= 0:
        return []
    high = struct.pack(f">{n}Q", *_high_words(n)).hex()
    low = bytearray(os.urandom(8 * n))
    low[0::8] = bytes([b & 0x3F | 0x80 for b in low[0::8]])  # the RFC 9562 variant, 0b10
    rand = low.hex()
    return [
        JobId(f"{high[i:i + 8]}-{high[i + 8:i + 12]}-{high[i + 12:i + 16]}-"
              f"{rand[i:i + 4]}-{rand[i + 4:i + 16]}")
        for i in range(0, 16 * n, 16)
    ]  # fmt: skip


def new_token(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)
