"""Group commit of single enqueues (``conveyor.api.batching``), on every engine: concurrent
``POST /jobs`` requests share transactions, yet each gets exactly its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import pytest

from conveyor.api.batching import GroupCommitter
from conveyor.backend import Backend, Enqueued, JobFilter, ListRequest
from conveyor.errors import BackendUnavailable, QueueFull
from conveyor.jobs import NewJob


async def post_all(
    client: httpx.AsyncClient, bodies: Sequence[dict[str, object]]
) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.post("/jobs", json=b) for b in bodies)))


async def stored(backend: Backend, queue: str | None = None) -> list[str]:
    job_filter = JobFilter(queues=frozenset({queue})) if queue else JobFilter()
    page = await backend.list_jobs(ListRequest(job_filter, limit=1000))
    return [job.id for job in page.jobs]


class CountingWrite:
    """The real backend's ``enqueue``, recording the size of every call; optionally held
    at a gate, or failing for jobs of one kind (a fault in front of a real store)."""

    def __init__(self, backend: Backend, *, failing_kind: str | None = None) -> None:
        self.backend = backend
        self.sizes: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing_kind = failing_kind

    async def __call__(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        self.sizes.append(len(jobs))
        await self.gate.wait()
        if any(job.kind == self.failing_kind for job in jobs):
            raise BackendUnavailable("injected")
        return await self.backend.enqueue(jobs)


# ------------------------------------------------------------------ over HTTP


async def test_concurrent_single_enqueues_each_get_their_own_job(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    responses = await post_all(client, [{"kind": "echo", "payload": {"i": i}} for i in range(200)])
    assert [r.status_code for r in responses] == [201] * 200
    bodies = [r.json() for r in responses]
    assert [b["payload"] for b in bodies] == [{"i": i} for i in range(200)]
    ids = [b["id"] for b in bodies]
    assert len(set(ids)) == 200
    assert sorted(await stored(backend)) == sorted(ids)


async def test_concurrent_same_idempotency_key_gives_one_job(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    bodies = [{"kind": "echo", "idempotency_key": "once", "payload": {"i": i}} for i in range(20)]
    responses = await post_all(client, [*bodies, *({"kind": "echo"} for _ in range(10))])
    keyed = responses[:20]
    assert sorted(r.status_code for r in keyed) == [200] * 19 + [201]
    assert len({r.json()["id"] for r in keyed}) == 1
    assert all(r.status_code == 201 for r in responses[20:])
    assert len(await stored(backend)) == 11


async def test_full_queue_refuses_exactly_the_over_limit_requests(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.patch("/queues/small", json={"max_depth": 7})
    mixed = [{"kind": "echo", "queue": "small" if i % 2 else "default"} for i in range(40)]
    responses = await post_all(client, mixed)
    small = [r for r, b in zip(responses, mixed, strict=True) if b["queue"] == "small"]
    other = [r for r, b in zip(responses, mixed, strict=True) if b["queue"] == "default"]
    assert sorted(r.status_code for r in small) == [201] * 7 + [429] * 13
    for refused in (r for r in small if r.status_code == 429):
        assert refused.headers["retry-after"] and refused.json()["queue"] == "small"
    assert [r.status_code for r in other] == [201] * 20
    assert len(await stored(backend, "small")) == 7
    assert len(await stored(backend, "default")) == 20


async def test_a_bad_request_does_not_fail_the_others(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.patch("/queues/closed", json={"max_depth": 1})
    await client.post("/jobs", json={"kind": "echo", "queue": "closed"})
    bodies: list[dict[str, object]] = [{"kind": "echo", "payload": {"i": i}} for i in range(30)]
    bodies[10] = {"kind": "echo", "queue": "closed"}  # refused by the store: QueueFull
    bodies[20] = {"kind": "echo", "payload": {"x": "y" * 600_000}}  # refused by the service
    bodies[25] = {"kind": "no_such_kind"}
    responses = await post_all(client, bodies)
    codes = [r.status_code for r in responses]
    assert (codes[10], codes[20], codes[25]) == (429, 413, 422)
    assert [c for i, c in enumerate(codes) if i not in (10, 20, 25)] == [201] * 27
    assert len(await stored(backend, "default")) == 27


async def test_a_batch_stays_its_own_transaction(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.patch("/queues/q", json={"max_depth": 5})
    batch = client.post("/jobs/batch", json={"jobs": [{"kind": "echo", "queue": "q"}] * 6})
    singles = [client.post("/jobs", json={"kind": "echo", "queue": "q"}) for _ in range(5)]
    refused, *accepted = await asyncio.gather(batch, *singles)
    assert refused.status_code == 429  # all or nothing, never split among the singles
    assert [r.status_code for r in accepted] == [201] * 5
    assert len(await stored(backend, "q")) == 5


# ------------------------------------------------------------------ the committer itself


def job(i: int, **options: object) -> NewJob:
    return NewJob(kind=str(options.pop("kind", "echo")), payload={"i": i}, **options)  # type: ignore[arg-type]


async def test_followers_go_out_together_after_the_first_write(backend: Backend) -> None:
    write = CountingWrite(backend)
    committer = GroupCommitter(write, max_group=40)
    write.gate.clear()
    first = asyncio.create_task(committer.submit(job(0)))
    await asyncio.sleep(0.01)  # the first is written at once, alone
    assert write.sizes == [1]
    followers = [asyncio.create_task(committer.submit(job(i))) for i in range(1, 101)]
    await asyncio.sleep(0.01)
    write.gate.set()
    results = await asyncio.gather(first, *followers)
    assert write.sizes == [1, 40, 40, 20]
    assert [r.job.payload for r in results] == [{"i": i} for i in range(101)]
    assert all(r.created for r in results)
    assert len(await stored(backend)) == 101


async def test_queue_full_in_a_group_fills_the_queue_in_arrival_order(backend: Backend) -> None:
    from conveyor.backend import QueueSettings

    await backend.configure_queue(QueueSettings(queue="small", max_depth=3))
    write = CountingWrite(backend)
    committer = GroupCommitter(write)
    write.gate.clear()
    blocker = asyncio.create_task(committer.submit(job(-1)))
    await asyncio.sleep(0.01)
    group = [asyncio.create_task(committer.submit(job(i, queue="small"))) for i in range(8)]
    await asyncio.sleep(0.01)
    write.gate.set()
    await blocker
    outcomes = await asyncio.gather(*group, return_exceptions=True)
    assert [isinstance(o, Enqueued) for o in outcomes] == [True] * 3 + [False] * 5
    assert all(isinstance(o, QueueFull) for o in outcomes[3:])
    assert len(await stored(backend, "small")) == 3


async def test_any_other_error_is_each_jobs_own(backend: Backend) -> None:
    write = CountingWrite(backend, failing_kind="explode")
    committer = GroupCommitter(write)
    write.gate.clear()
    blocker = asyncio.create_task(committer.submit(job(-1)))
    await asyncio.sleep(0.01)
    group = [
        asyncio.create_task(committer.submit(job(i, kind="explode" if i == 4 else "echo")))
        for i in range(10)
    ]
    await asyncio.sleep(0.01)
    write.gate.set()
    await blocker
    outcomes = await asyncio.gather(*group, return_exceptions=True)
    assert isinstance(outcomes[4], BackendUnavailable)
    assert all(isinstance(o, Enqueued) for i, o in enumerate(outcomes) if i != 4)
    assert len(await stored(backend)) == 10  # the blocker and nine others, each once


async def test_cancelled_requests_lose_or_duplicate_nothing(backend: Backend) -> None:
    write = CountingWrite(backend)
    committer = GroupCommitter(write)
    write.gate.clear()
    in_flight = asyncio.create_task(committer.submit(job(0)))
    await asyncio.sleep(0.01)
    waiting = [asyncio.create_task(committer.submit(job(i))) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    in_flight.cancel()  # its write goes on: the job may be stored, the client got no answer
    waiting[1].cancel()  # still waiting: never written
    await asyncio.sleep(0.01)
    write.gate.set()
    results = await asyncio.gather(*(w for i, w in enumerate(waiting) if i != 1))
    with pytest.raises(asyncio.CancelledError):
        await in_flight
    with pytest.raises(asyncio.CancelledError):
        await waiting[1]
    assert write.sizes == [1, 4]
    payloads = sorted(job.payload["i"] for job in (await backend.list_jobs(ListRequest())).jobs)
    assert payloads == [0, 1, 3, 4, 5]  # type: ignore[type-var]
    assert {r.job.id for r in results} <= set(await stored(backend))
