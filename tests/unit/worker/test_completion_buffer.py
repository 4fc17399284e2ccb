"""Unit tests of the completion buffer's flush loop (conveyor.worker.completer): when it
writes on its own, and when it leaves a batch to the claimer. The store is a recorder: what
is under test is the buffer's timing, not a backend's write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest

from conveyor.backend import Completion, Lease
from conveyor.jobs import JobId, WorkerId
from conveyor.worker.completer import CompletionBuffer

INTERVAL = 0.3  # seconds: generous, so that a slow loop on a busy machine cannot fake a pass


class RecordingStore:
    def __init__(self) -> None:
        self.writes: list[list[JobId]] = []

    async def complete(self, completions: Sequence[Completion]) -> list[JobId]:
        self.writes.append([c.lease.job_id for c in completions])
        return []


def completion(n: int) -> Completion:
    return Completion(Lease(JobId(f"job-{n}"), WorkerId("w"), f"t{n}", 1))


@pytest.fixture
async def setup() -> AsyncIterator[tuple[CompletionBuffer, RecordingStore]]:
    store = RecordingStore()
    written: list[Completion] = []
    buffer = CompletionBuffer(
        store,  # type: ignore[arg-type]  # only ``complete`` is called
        lambda batch, lost: written.extend(batch),
        timedelta(seconds=INTERVAL),
        batch=3,
    )
    loop = asyncio.create_task(buffer.run())
    yield buffer, store
    buffer.close()
    await asyncio.wait_for(loop, 5)


async def test_a_completion_nobody_takes_is_written_within_the_interval(
    setup: tuple[CompletionBuffer, RecordingStore],
) -> None:
    buffer, store = setup
    buffer.add(completion(1))
    await asyncio.sleep(INTERVAL / 3)
    assert store.writes == []
    await asyncio.sleep(INTERVAL * 2)
    assert store.writes == [[JobId("job-1")]]
    assert len(buffer) == 0


async def test_a_full_batch_is_written_at_once(
    setup: tuple[CompletionBuffer, RecordingStore],
) -> None:
    buffer, store = setup
    for n in range(3):
        buffer.add(completion(n))
    await asyncio.sleep(INTERVAL / 6)
    assert store.writes == [[JobId("job-0"), JobId("job-1"), JobId("job-2")]]


async def test_the_interval_counts_from_the_oldest_completion_waiting(
    setup: tuple[CompletionBuffer, RecordingStore],
) -> None:
    """A busy claimer takes each batch long before the interval; the flush loop, woken by
    the first batch, must not then write the next batch early (in a call of its own)."""
    buffer, store = setup
    buffer.add(completion(1))
    await asyncio.sleep(INTERVAL * 0.6)
    assert [c.lease.job_id for c in buffer.take()] == [JobId("job-1")]  # the claimer's
    buffer.add(completion(2))
    await asyncio.sleep(INTERVAL * 0.6)  # 1.2 intervals after the first, 0.6 after this one
    assert store.writes == []
    await asyncio.sleep(INTERVAL)
    assert store.writes == [[JobId("job-2")]]


async def test_close_writes_what_is_left_at_once(
    setup: tuple[CompletionBuffer, RecordingStore],
) -> None:
    buffer, store = setup
    buffer.add(completion(1))
    buffer.close()
    await asyncio.sleep(INTERVAL / 6)
    assert store.writes == [[JobId("job-1")]]
