"""Conformance: reading jobs back (list_jobs pages and filters), queue stats and settings, and
retention (purge)."""

from __future__ import annotations

from datetime import timedelta

from tests.backends.conftest import claim_one, claim_request, enqueue_one, new_job

from conveyor.backend import (
    Backend,
    FailRequest,
    JobFilter,
    ListRequest,
    PurgeRequest,
    QueueSettings,
    complete_one,
)
from conveyor.clock import FrozenClock
from conveyor.jobs import AttemptError, Job, JobStatus


async def all_pages(backend: Backend, flt: JobFilter, limit: int = 50) -> list[list[Job]]:
    pages: list[list[Job]] = []
    cursor: str | None = None
    while True:
        page = await backend.list_jobs(ListRequest(filter=flt, limit=limit, cursor=cursor))
        pages.append(list(page.jobs))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 100, "pagination does not terminate"


# ----------------------------------------------------------------------------- list_jobs


async def test_list_newest_first_with_cursor_pages(backend: Backend) -> None:
    ids = []
    for chunk in range(4):
        out = await backend.enqueue([new_job(payload={"n": chunk * 30 + i}) for i in range(30)])
        ids.extend(e.job.id for e in out)
    pages = await all_pages(backend, JobFilter(), limit=50)
    assert [len(p) for p in pages] == [50, 50, 20]
    listed = [j.id for p in pages for j in p]
    assert listed == list(reversed(ids))  # newest first, no gaps, no duplicates
    assert listed == sorted(listed, reverse=True)


async def test_list_exact_page_boundary(backend: Backend) -> None:
    await backend.enqueue([new_job() for _ in range(10)])
    pages = await all_pages(backend, JobFilter(), limit=5)
    assert sum(len(p) for p in pages) == 10
    assert all(pages[:2]) and all(len(p) == 5 for p in pages[:2])
    assert len(pages) <= 3 and (len(pages) == 2 or pages[2] == [])


async def test_list_empty(backend: Backend) -> None:
    page = await backend.list_jobs(ListRequest())
    assert page.jobs == () and page.next_cursor is None


async def test_list_filters(backend: Backend, clock: FrozenClock) -> None:
    early = await enqueue_one(backend, queue="a", kind="k1")
    t1 = clock.advance(timedelta(minutes=1))
    mid = await enqueue_one(backend, queue="b", kind="k2")
    t2 = clock.advance(timedelta(minutes=1))
    late = await enqueue_one(backend, queue="a", kind="k2")
    [claimed] = await backend.claim(claim_request(queues=("a",)))
    assert claimed.job.id == early.id

    async def ids(**kw: object) -> list[str]:
        page = await backend.list_jobs(ListRequest(filter=JobFilter(**kw)))  # type: ignore[arg-type]
        return [j.id for j in page.jobs]

    assert await ids() == [late.id, mid.id, early.id]
    assert await ids(statuses=frozenset({JobStatus.RUNNING})) == [early.id]
    assert await ids(statuses=frozenset({JobStatus.QUEUED, JobStatus.RUNNING})) == [
        late.id,
        mid.id,
        early.id,
    ]
    assert await ids(queues=frozenset({"a"})) == [late.id, early.id]
    assert await ids(kinds=frozenset({"k2"})) == [late.id, mid.id]
    assert await ids(queues=frozenset({"a"}), kinds=frozenset({"k2"})) == [late.id]
    assert await ids(created_after=t1) == [late.id, mid.id]  # inclusive
    assert await ids(created_before=t2) == [mid.id, early.id]  # exclusive
    assert await ids(created_after=t1, created_before=t2) == [mid.id]
    assert await ids(ids=frozenset({early.id, late.id})) == [late.id, early.id]
    assert await ids(ids=frozenset({early.id}), queues=frozenset({"b"})) == []


async def test_list_filtered_pagination(backend: Backend) -> None:
    wanted = []
    for i in range(30):
        [e] = await backend.enqueue([new_job(queue="even" if i % 2 == 0 else "odd")])
        if i % 2 == 0:
            wanted.append(e.job.id)
    pages = await all_pages(backend, JobFilter(queues=frozenset({"even"})), limit=4)
    assert [j.id for p in pages for j in p] == list(reversed(wanted))


# ----------------------------------------------------------------------------- stats


async def test_stats_counts_every_status(backend: Backend, clock: FrozenClock) -> None:
    start = clock.now()
    await backend.enqueue([new_job(queue="q") for _ in range(4)])
    await enqueue_one(backend, queue="q", delay=timedelta(hours=1))
    [done, failed, running] = await backend.claim(claim_request(queues=("q",), limit=3))
    await complete_one(backend, done.lease)
    error = AttemptError(attempt=1, at=start, type="builtins.ValueError", message="x")
    await backend.fail(FailRequest(failed.lease, error))
    await enqueue_one(backend, queue="other")
    clock.advance(timedelta(seconds=10))
    stats = {s.queue: s for s in await backend.stats()}
    assert list(stats) == ["other", "q"]
    q = stats["q"]
    assert q.counts == {
        JobStatus.SCHEDULED: 1,
        JobStatus.QUEUED: 1,
        JobStatus.RUNNING: 1,
        JobStatus.RETRYING: 0,
        JobStatus.COMPLETED: 1,
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 0,
    }
    assert q.oldest_queued_at == start
    assert q.completed_last_minute == 1 and q.failed_last_minute == 1
    assert not q.paused and q.max_depth is None
    assert stats["other"].counts[JobStatus.QUEUED] == 1
    assert sum(stats["other"].counts.values()) == 1
    clock.advance(timedelta(minutes=2))
    q = {s.queue: s for s in await backend.stats()}["q"]
    assert q.completed_last_minute == 0 and q.failed_last_minute == 0
    assert running.job.queue == "q"


async def test_stats_oldest_queued_ignores_future_jobs(
    backend: Backend, clock: FrozenClock
) -> None:
    await enqueue_one(backend, delay=timedelta(minutes=5))
    [s] = await backend.stats()
    assert s.oldest_queued_at is None
    clock.advance(timedelta(minutes=1))
    await enqueue_one(backend)
    [s] = await backend.stats()
    assert s.oldest_queued_at == clock.now()


async def test_stats_include_configured_queues(backend: Backend) -> None:
    await backend.configure_queue(QueueSettings(queue="idle", paused=True, max_depth=10))
    [s] = await backend.stats()
    assert s.queue == "idle" and s.paused and s.max_depth == 10
    assert set(s.counts) == set(JobStatus) and not any(s.counts.values())


async def test_stats_empty(backend: Backend) -> None:
    assert await backend.stats() == []


# ----------------------------------------------------------------------------- queue settings


async def test_queue_settings_round_trip(backend: Backend) -> None:
    assert await backend.queue_settings("never") == QueueSettings(queue="never")
    settings = QueueSettings(queue="webhooks", paused=True, max_depth=500)
    assert await backend.configure_queue(settings) == settings
    assert await backend.queue_settings("webhooks") == settings
    changed = QueueSettings(queue="webhooks", paused=False, max_depth=None)
    await backend.configure_queue(changed)
    assert await backend.queue_settings("webhooks") == changed


# ----------------------------------------------------------------------------- purge


async def finish(backend: Backend, status: JobStatus, clock: FrozenClock) -> Job:
    job = await enqueue_one(backend)
    if status is JobStatus.CANCELLED:
        return await backend.cancel(job.id)
    claimed = await claim_one(backend)
    if status is JobStatus.COMPLETED:
        await complete_one(backend, claimed.lease)
    else:
        error = AttemptError(attempt=1, at=clock.now(), type="x.Error", message="x")
        await backend.fail(FailRequest(claimed.lease, error))
    return job


async def test_purge_by_age_per_status(backend: Backend, clock: FrozenClock) -> None:
    completed = await finish(backend, JobStatus.COMPLETED, clock)
    failed = await finish(backend, JobStatus.FAILED, clock)
    cancelled = await finish(backend, JobStatus.CANCELLED, clock)
    waiting = await enqueue_one(backend)
    await backend.append_log(completed.id, ["line 1", "line 2"])
    clock.advance(timedelta(days=2))
    request = PurgeRequest(
        completed_older_than=timedelta(days=1),
        failed_older_than=timedelta(days=3),
        cancelled_older_than=None,
    )
    assert await backend.purge(request) == 1
    assert await backend.get(completed.id) is None
    assert await backend.read_log(completed.id) == []
    assert await backend.get(failed.id) is not None
    clock.advance(timedelta(days=2))
    assert await backend.purge(request) == 1
    assert await backend.get(failed.id) is None
    assert await backend.get(cancelled.id) is not None  # None keeps forever
    assert await backend.get(waiting.id) is not None  # never purges live jobs


async def test_purge_keeps_recent(backend: Backend, clock: FrozenClock) -> None:
    job = await finish(backend, JobStatus.COMPLETED, clock)
    clock.advance(timedelta(hours=23))
    assert await backend.purge(PurgeRequest(completed_older_than=timedelta(days=1))) == 0
    assert await backend.get(job.id) is not None


async def test_purge_limit(backend: Backend, clock: FrozenClock) -> None:
    for _ in range(5):
        await finish(backend, JobStatus.COMPLETED, clock)
    clock.advance(timedelta(days=2))
    request = PurgeRequest(completed_older_than=timedelta(days=1), limit=2)
    assert await backend.purge(request) == 2
    assert await backend.purge(request) == 2
    assert await backend.purge(request) == 1
    assert await backend.purge(request) == 0


async def test_purge_frees_idempotency_key(backend: Backend, clock: FrozenClock) -> None:
    await enqueue_one(backend, idempotency_key="tick-1")
    claimed = await claim_one(backend)
    await complete_one(backend, claimed.lease)
    clock.advance(timedelta(days=2))
    assert await backend.purge(PurgeRequest()) == 1
    [again] = await backend.enqueue([new_job(idempotency_key="tick-1")])
    assert again.created and again.job.id != claimed.job.id
