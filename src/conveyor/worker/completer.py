"""The completion buffer: on the hot path, successful outcomes are not written one by one.
A buffered job keeps its slot until its outcome is written, so a worker never holds more
leases than its concurrency.

Two writers drain the buffer:

* the claimer, whenever it is about to claim, takes what is buffered (``take``) and hands it
  back in the same call as the claim (``backend.complete_and_claim``: one round trip and, on
  the SQL engines, one commit for both). When every slot is busy, a buffered completion wakes
  the claimer, so a full worker swaps finished jobs for new ones in one call;
* ``run``, the flush loop, writes whatever the claimer did not take within
  ``flush_interval`` (or at once past ``batch`` jobs): when the queues are empty and the
  claimer is waiting for work, and during shutdown.

A completion buffered but not yet written when the process dies is simply re-run after its
lease is rescued (at-least-once). Each write runs under ``asyncio.shield``, so stopping the
worker cannot lose a write that has started; ``close()`` flushes what is left. Who calls it:
the executor (``add``), the claimer (``take``, ``written``, ``put_back``) and the runtime
(``run`` in the TaskGroup, ``close`` at shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import timedelta

from conveyor.backend import Completion, JobStore
from conveyor.errors import BackendUnavailable
from conveyor.jobs import JobId
from conveyor.worker.outage import Backoff, log

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
        self._since = 0.0  # loop time when the oldest pending completion was buffered
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._closed = asyncio.Event()
        self._backoff = Backoff()
        self._give_up = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, completion: Completion) -> None:
        """Buffer ``completion``; written by the next claim or within the flush interval."""
        if not self._pending:
            self._since = self._loop.time()
        self._pending.append(completion)
        self._wake.set()
        if len(self._pending) >= self._batch:
            self._full.set()

    def take(self) -> list[Completion]:
        """Everything buffered, for the caller to write (then ``written`` or ``put_back``)."""
        taken, self._pending = self._pending[: self._batch], self._pending[self._batch :]
        if len(self._pending) < self._batch:
            self._full.clear()
        return taken

    def put_back(self, taken: Sequence[Completion]) -> None:
        """``take``n completions whose write failed: first in line for the next one."""
        if not self._pending:
            self._since = self._loop.time()
        self._pending[:0] = taken
        self._wake.set()
        if len(self._pending) >= self._batch:
            self._full.set()

    def written(self, batch: Sequence[Completion], lost: frozenset[JobId]) -> None:
        """``take``n completions are stored (``lost``: those whose lease was not current)."""
        self._on_written(batch, lost)

    async def run(self) -> None:
        """Flush loop; returns after ``close()`` once everything is written."""
        while True:
            if not self._pending:
                if self._closed.is_set():
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._full.is_set() and not self._closed.is_set():
                # The interval counts from the oldest completion waiting, not from the wake:
                # a busy claimer takes each batch within a round trip, and a flush timed from
                # an earlier batch would split the next one into a write of its own.
                delay = self._since + self._interval - self._loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), delay)
                    continue
            await self._flush()

    async def _flush(self) -> None:
        batch = self.take()
        while batch:
            try:
                lost = await asyncio.shield(self._store.complete(batch))
            except BackendUnavailable as exc:
                if self._give_up:
                    log.warning(
                        "stopping at once: %d completions not written (%s); their jobs run "
                        "again after their leases expire",
                        len(batch),
                        exc,
                    )
                    return
                await self._backoff.wait("complete", exc)
                continue
            self._backoff.reset()
            self.written(batch, frozenset(lost))
            return

    def give_up_when_unavailable(self) -> None:
        """From now on a write that fails for want of the backend is dropped, not retried:
        the worker was told to stop at once."""
        self._give_up = True

    def close(self) -> None:
        """Ask ``run`` to write what is left and return."""
        self._closed.set()
        self._wake.set()
