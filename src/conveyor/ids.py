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


def uuid7() -> uuid.UUID:
    """A UUIDv7, monotonic within this process: 48-bit ms timestamp, a 12-bit counter seeded
    randomly each millisecond (RFC 9562 method 1), then 62 random bits."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        else:
            _seq += 1
            if _seq > 0xFFF:  # counter overflow: borrow the next millisecond
                _last_ms += 1
                _seq = 0
            ms = _last_ms
        seq = _seq
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)


def new_job_id() -> JobId:
    return JobId(str(uuid7()))


def new_token(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)
