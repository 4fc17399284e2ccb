"""The completion buffer: on the hot path, successful outcomes are written in batches (one
``backend.complete`` call per few milliseconds or per ``completion_batch`` jobs, or at once
when the worker has no free slot: a buffered job keeps its slot until its outcome is written,
so a worker never holds more leases than its concurrency).

A completion buffered but not yet written when the process dies is simply re-run after its
lease is rescued (at-least-once). Each write runs under ``asyncio.shield``, so stopping the
worker cannot lose a write that has started; ``close()`` flushes what is left. Who calls it:
the executor (``add``) and the runtime (``run`` in the TaskGroup, ``close`` at shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import timedelta

from conveyor.backend import Completion, JobStore
from conveyor.errors import BackendUnavailable
from conveyor.jobs import JobId
from conveyor.worker.outage import Backoff

OnWritten = Callable[[Sequence[Completion], frozenset[JobId]], None]


class CompletionBuffer:
    def __init__(
        self,
        store: JobStore,
        on_written: OnWritten,
        flush_interval: timedelta,
        batch: int,
    ) -> None:
        self._store = store
        self._on_written = on_written
        self._interval = flush_interval.total_seconds()
        self._batch = batch
        self._pending: list[Completion] = []
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._closed = asyncio.Event()
        self._backoff = Backoff()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, completion: Completion, *, urgent: bool = False) -> None:
        """Buffer ``completion``; ``urgent``: write without waiting for the flush interval
        (the worker has no free slot left, and buffered jobs keep theirs until written)."""
        self._pending.append(completion)
        self._wake.set()
        if urgent or len(self._pending) >= self._batch:
            self._full.set()

    async def run(self) -> None:
        """Flush loop; returns after ``close()`` once everything is written."""
        while True:
            if not self._pending:
                if self._closed.is_set():
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if not self._full.is_set() and not self._closed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._interval)
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending[: self._batch], self._pending[self._batch :]
        if len(self._pending) < self._batch:
            self._full.clear()
        while True:
            try:
                lost = await asyncio.shield(self._store.complete(batch))
            except BackendUnavailable as exc:
                await self._backoff.wait("complete", exc)
                continue
            self._backoff.reset()
            self._on_written(batch, frozenset(lost))
            return

    def close(self) -> None:
        """Ask ``run`` to write what is left and return."""
        self._closed.set()
        self._wake.set()
