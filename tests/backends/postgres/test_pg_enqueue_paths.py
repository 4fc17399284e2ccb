"""The two enqueue statements (enqueue.py): a batch without keys or ids is stored by a plain
INSERT and its jobs are built client-side, so they must equal what PostgreSQL stored; a
batch touching a bounded queue, or with keys or ids, goes through ``conveyor_enqueue``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.backend import QueueSettings
from conveyor.backends.postgres import PostgresBackend
from conveyor.clock import FrozenClock
from conveyor.errors import QueueFull
from conveyor.jobs import JobStatus, NewJob

pytestmark = pytest.mark.postgres


def _varied(now: datetime) -> list[NewJob]:
    return [
        NewJob(kind="a"),
        NewJob(kind="b", queue="other", priority=-5, payload={"x": [1, 2.5, "é", None]}),
        NewJob(kind="c", run_at=now + timedelta(hours=3, microseconds=7)),
        NewJob(kind="d", run_at=now - timedelta(days=2)),
        NewJob(kind="e", delay=timedelta(days=400, microseconds=3)),
        NewJob(kind="f", delay=timedelta(seconds=-30), timeout=timedelta(minutes=2)),
        NewJob(kind="g", max_attempts=9, trace="00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
    ]


@pytest.fixture
async def frozen(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend(postgres_url, clock=FrozenClock(datetime(2031, 5, 6, tzinfo=UTC)))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.mark.parametrize("clock", ["server", "frozen"])
async def test_plain_batch_returns_what_was_stored(
    clock: str, pg: PostgresBackend, frozen: PostgresBackend
) -> None:
    backend = pg if clock == "server" else frozen
    batch = _varied(await backend.now())
    out = await backend.enqueue(batch)
    assert [e.created for e in out] == [True] * len(batch)
    assert [e.job.kind for e in out] == [j.kind for j in batch]
    for enq in out:
        assert await backend.get(enq.job.id) == enq.job
    assert len({e.job.created_at for e in out}) == 1
    statuses = [e.job.status for e in out]
    assert statuses.count(JobStatus.SCHEDULED) == 2  # c and e; d and f are due at once
    assert out[1].job.payload == batch[1].payload
    assert out[1].job.payload is not batch[1].payload  # a copy the caller cannot mutate
    if clock == "frozen":
        assert out[0].job.created_at == datetime(2031, 5, 6, tzinfo=UTC)


async def test_bounded_queue_refuses_the_whole_plain_batch(pg: PostgresBackend) -> None:
    await pg.configure_queue(QueueSettings(queue="tight", max_depth=2))
    ok = await pg.enqueue([NewJob(kind="a", queue="tight"), NewJob(kind="b", queue="free")])
    assert [e.created for e in ok] == [True, True]
    assert [await pg.get(e.job.id) for e in ok] == [e.job for e in ok]
    before = await pg.stats()
    with pytest.raises(QueueFull):
        await pg.enqueue([NewJob(kind="c", queue="free")] + [NewJob(kind="d", queue="tight")] * 2)
    assert await pg.stats() == before


async def test_a_key_in_the_batch_takes_the_checked_path(pg: PostgresBackend) -> None:
    [first] = await pg.enqueue([NewJob(kind="a", idempotency_key="k1")])
    out = await pg.enqueue([NewJob(kind="b"), NewJob(kind="a2", idempotency_key="k1")])
    assert [e.created for e in out] == [True, False]
    assert out[1].job == first.job
    assert await pg.get(out[0].job.id) == out[0].job
