"""Identifiers: UUIDv7 job ids (RFC 9562), time-ordered so id order is creation order, and
random tokens for leases and API secrets. Called by backends when they store a new job."""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid

from conveyor.jobs import JobId

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def _uuid7_ints(n: int) -> list[int]:
    """``n`` UUIDv7 values as integers, monotonic within this process: 48-bit ms timestamp, a
    12-bit counter seeded randomly each millisecond (RFC 9562 method 1), then 62 random bits.
    One lock and one ``urandom`` call for the whole batch."""
    global _last_ms, _seq
    out: list[int] = []
    with _lock:
        for _ in range(n):
            ms = time.time_ns() // 1_000_000
            if ms > _last_ms:
                _last_ms = ms
                _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
            else:
                _seq += 1
                if _seq > 0xFFF:  # counter overflow: borrow the next millisecond
                    _last_ms += 1
                    _seq = 0
            out.append((_last_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _seq << 64 | 0b10 << 62)
    rand = os.urandom(8 * n)
    mask = (1 << 62) - 1
    return [
        value | int.from_bytes(rand[8 * i : 8 * i + 8], "big") & mask for i, value in enumerate(out)
    ]


def uuid7() -> uuid.UUID:
    """A UUIDv7 (see ``_uuid7_ints``)."""
    return uuid.UUID(int=_uuid7_ints(1)[0])


def _text(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_job_id() -> JobId:
    return JobId(_text(_uuid7_ints(1)[0]))


def new_job_ids(n: int) -> list[JobId]:
    """``n`` fresh job ids in creation order, as one batch (cheaper than ``n`` calls)."""
    return [JobId(_text(value)) for value in _uuid7_ints(n)]


def new_token(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)
