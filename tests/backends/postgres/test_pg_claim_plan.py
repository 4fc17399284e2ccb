"""The claim statement's plans on a real backlog: both walk the partial claim index
(``jobs_claim_idx``) in claim order and read O(limit x queues) rows, never the whole backlog
or finished jobs; and concurrent claims on several queues never hand out a job twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import cast

import psycopg
import pytest

from conveyor.backend import ClaimRequest, Completion
from conveyor.backends.postgres import PostgresBackend
from conveyor.backends.postgres.queries import QUERIES
from conveyor.jobs import NewJob, WorkerId

pytestmark = pytest.mark.postgres

WAITING_PER_QUEUE = 3000
LIMIT = 10
JSONNode = dict[str, object]


def nodes(plan: JSONNode) -> Iterator[JSONNode]:
    yield plan
    for child in cast(list[JSONNode], plan.get("Plans", [])):
        yield from nodes(child)


async def explain(url: str, sql: bytes, params: dict[str, object], part: str) -> list[JSONNode]:
    """EXPLAIN ANALYZE, by auto_explain, of the statement inside the function that ``sql``
    calls whose text contains ``part``, run once and rolled back; every node of its plan."""
    notices: list[str] = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_format = json",
            "SET auto_explain.log_level = notice",
        ):
            await conn.execute(setting)
        await conn.execute(sql, params)
        await conn.rollback()
    plans = [json.loads(n[n.index("{") :]) for n in notices if "plan:" in n]
    [doc] = [p for p in plans if part in p["Query Text"]]
    return list(nodes(doc["Plan"]))


@pytest.fixture
async def backlog(pg: PostgresBackend, postgres_url: str) -> str:
    """Two queues with 3,000 waiting jobs each, and 3,000 completed jobs in each too."""
    for queue in ("alpha", "beta"):
        for _ in range(2 * WAITING_PER_QUEUE // 1000):
            await pg.enqueue([NewJob(kind="k", queue=queue, priority=i % 3) for i in range(1000)])
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        for queue in ("alpha", "beta"):
            await conn.execute(
                "UPDATE jobs SET status = 'completed', finished_at = now() WHERE id IN"
                " (SELECT id FROM jobs WHERE queue = %s ORDER BY id LIMIT %s)",
                (queue, WAITING_PER_QUEUE),
            )
        await conn.execute("VACUUM ANALYZE jobs")
    return postgres_url


async def test_claim_index_is_partial_on_waiting_statuses(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'jobs_claim_idx'"
        )
        row = await cur.fetchone()
    assert row is not None
    waiting = "ARRAY['scheduled'::text, 'queued'::text, 'retrying'::text]"
    assert "(queue, priority DESC, run_at, id)" in row[0]
    assert f"WHERE (status = ANY ({waiting}))" in row[0], row[0]


@pytest.mark.parametrize("queues", [["alpha"], ["alpha", "beta"]], ids=["one", "several"])
async def test_claim_walks_the_claim_index(backlog: str, queues: list[str]) -> None:
    params: dict[str, object] = {
        "now": None,
        "limit": LIMIT,
        "worker": "w",
        "lease_for": timedelta(seconds=30),
        "queues": queues,
        "completions": "[]",
    }
    plan = await explain(backlog, QUERIES.complete_claim, params, "picked")
    on_jobs = [n for n in plan if n.get("Relation Name") == "jobs"]
    assert not [n for n in on_jobs if n["Node Type"] == "Seq Scan"], on_jobs
    scans = [n for n in on_jobs if n.get("Index Name") == "jobs_claim_idx"]
    assert len(scans) == 1, on_jobs
    read = cast(int, scans[0]["Actual Rows"]) * cast(int, scans[0]["Actual Loops"])
    assert read <= LIMIT * len(queues), scans[0]
    update = plan[0]
    assert update["Node Type"] == "ModifyTable" and update["Actual Rows"] == LIMIT


async def test_completion_looks_jobs_up_by_primary_key(backlog: str, pg: PostgresBackend) -> None:
    """Never through jobs_lease_idx, whose dead entries a plan made without statistics
    would walk on every completion: 10 completions read 10 rows of the primary key."""
    claimed = await pg.claim(ClaimRequest(WorkerId("w"), ("alpha",), LIMIT, timedelta(seconds=30)))
    batch = [{"id": c.job.id, "token": c.token, "result": None} for c in claimed]
    params: dict[str, object] = {
        "now": None,
        "limit": 0,
        "worker": "w",
        "lease_for": timedelta(seconds=30),
        "queues": [],
        "completions": json.dumps(batch),
    }
    plan = await explain(backlog, QUERIES.complete_claim, params, "p_completions")
    assert not [n for n in plan if n["Node Type"] == "Seq Scan"], plan
    indexes = [n for n in plan if "Index Name" in n]
    assert [n["Index Name"] for n in indexes] == ["jobs_pkey"], indexes
    # At most two entries per job: its queued version's and its running one's.
    assert cast(int, indexes[0]["Actual Rows"]) <= 2 * LIMIT, indexes
    update = next(n for n in plan if n["Node Type"] == "ModifyTable")
    assert update["Actual Rows"] == LIMIT


async def test_idempotency_index_holds_only_keyed_jobs(
    postgres_url: str, pg: PostgresBackend
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        cur = await conn.execute(
            "SELECT indexdef FROM pg_indexes"
            " WHERE tablename = 'jobs' AND indexdef LIKE '%%idempotency_key%%'"
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [
        "CREATE UNIQUE INDEX jobs_idempotency_key_idx ON public.jobs USING btree (idempotency_key)"
        " WHERE (idempotency_key IS NOT NULL)"
    ]


async def test_concurrent_claims_on_several_queues_never_share_a_job(
    postgres_url: str, pg: PostgresBackend
) -> None:
    per_queue = 300
    for queue in ("alpha", "beta", "gamma"):
        await pg.enqueue([NewJob(kind="k", queue=queue, priority=i % 4) for i in range(per_queue)])
    handles = [PostgresBackend(postgres_url, migrate=False, pool_max=2) for _ in range(6)]
    await asyncio.gather(*(b.open() for b in handles))
    seen: list[str] = []

    async def worker(b: PostgresBackend, name: str) -> None:
        request = ClaimRequest(WorkerId(name), ("alpha", "beta", "gamma"), 7, timedelta(seconds=30))
        while claimed := await b.claim(request):
            seen.extend(c.job.id for c in claimed)
            assert await b.complete([Completion(c.lease, None) for c in claimed]) == []

    try:
        await asyncio.gather(*(worker(b, f"w{i}") for i, b in enumerate(handles)))
    finally:
        await asyncio.gather(*(b.close() for b in handles))
    assert len(seen) == 3 * per_queue and len(set(seen)) == 3 * per_queue
