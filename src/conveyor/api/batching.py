"""Group commit for single enqueues: concurrent ``POST /jobs`` requests share one transaction.

Who calls it: ``JobsService.enqueue`` for a one-job enqueue. Each request's job joins a
queue; one writer task takes everything waiting (up to ``max_group`` jobs, in arrival order)
and stores it with one ``write`` call (one backend transaction). Jobs that arrive while a
write is in flight wait for it to return and then go out together in the next one. There is
no timer: an idle API writes the first job at once.

What does not change for a caller:

* Each job gets its own ``Enqueued`` back; two jobs with the same idempotency key in one
  group get the same job, the first ``created=True`` and the second ``created=False`` (every
  engine resolves duplicates within one ``enqueue`` call, in order).
* Errors stay per job. When a group's write raises an ``EnqueueRefused`` (``QueueFull``,
  ``InvalidPayload``, ...) nothing was stored, and the group is split in halves, each written
  in order, down to single jobs: a job gets exactly the error it would get alone, and jobs
  before it in arrival order are stored first (``max_depth`` is filled in arrival order).
  Any other exception: each job of the group is written alone (concurrently, as independent
  requests would be) and gets its own outcome.
* Cancellation: a request cancelled while its job is still waiting takes the job out of the
  queue (it is never written). A request cancelled while its group is being written does not
  stop the write: its job may be stored although the client never got an answer, as with a
  connection lost after any commit; a retry with the same idempotency key finds it. The
  writer is its own task, so a cancelled request never cancels the other requests' write.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from conveyor.backend import Enqueued
from conveyor.errors import EnqueueRefused
from conveyor.jobs import NewJob

MAX_GROUP = 500  # jobs per grouped transaction

Write = Callable[[Sequence[NewJob]], Awaitable[list[Enqueued]]]


@dataclass(slots=True)
class _Pending:
    job: NewJob
    future: asyncio.Future[Enqueued] = field(repr=False)


class GroupCommitter:
    """Collects single jobs and stores those that wait together in one ``write`` call."""

    def __init__(self, write: Write, *, max_group: int = MAX_GROUP) -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self._write = write
        self.max_group = max_group
        self._waiting: deque[_Pending] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, job: NewJob) -> Enqueued:
        """Store ``job`` (possibly together with concurrent ones) and return its outcome, or
        raise the error it would have raised alone."""
        future: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Pending(job, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="conveyor-group-commit")
        return await future  # cancelling the request cancels only this future

    async def _drain(self) -> None:
        group: list[_Pending] = []
        try:
            while self._waiting:
                group = self._take()
                if group:
                    await self._store(group)
        except BaseException:  # the writer itself was cancelled (shutdown): nobody hangs
            for entry in [*group, *self._waiting]:
                entry.future.cancel()
            self._waiting.clear()
            raise

    def _take(self) -> list[_Pending]:
        group: list[_Pending] = []
        while self._waiting and len(group) < self.max_group:
            entry = self._waiting.popleft()
            if not entry.future.done():  # done here means cancelled: never written
                group.append(entry)
        return group

    async def _store(self, group: Sequence[_Pending]) -> None:
        try:
            results = await self._write([entry.job for entry in group])
        except EnqueueRefused as exc:
            if len(group) == 1:
                _settle_error(group[0], exc)
                return
            middle = len(group) // 2
            await self._store(group[:middle])
            await self._store(group[middle:])
        except Exception as exc:  # each job gets its own outcome instead
            if len(group) == 1:
                _settle_error(group[0], exc)
                return
            await asyncio.gather(*(self._store([entry]) for entry in group))
        else:
            for entry, result in zip(group, results, strict=True):
                if not entry.future.done():
                    entry.future.set_result(result)


def _settle_error(entry: _Pending, exc: Exception) -> None:
    if not entry.future.done():
        entry.future.set_exception(exc)
