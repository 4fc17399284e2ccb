"""PostgreSQL's standing claims (migration 4) where they meet other transactions: the
enqueue that hands a job over holds the claim's row until it commits, a transactional
enqueue (``enqueue_in``) never hands over, and a withdrawal racing the background deletion
of a used claim does not collect its job again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest

from conveyor.backend import ClaimRequest
from conveyor.backends.postgres import PostgresBackend, jobstore
from conveyor.jobs import JobStatus, NewJob, WorkerId

pytestmark = pytest.mark.postgres

INSERT = """
INSERT INTO jobs (id, queue, kind, status, priority, run_at, max_attempts, created_at,
                  updated_at)
VALUES (%s, 'default', 'k', 'queued', 0, now(), 3, now(), now())
"""


async def test_withdrawing_waits_for_the_enqueue_that_holds_the_claim(
    pg: PostgresBackend, postgres_url: str
) -> None:
    # The enqueue's transaction hands its job to the claim and is still open; the withdrawal
    # waits for its row lock and must then return the job that transaction committed (a
    # snapshot taken before the wait would not see it: the job would sit out its lease).
    assert await pg.claim(ClaimRequest(WorkerId("w"), ["default"], 1, standby="sb-1")) == []
    job_id = uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        async with conn.transaction():
            await conn.execute(INSERT, (job_id,))
            withdrawing = asyncio.ensure_future(
                pg.wait_for_handoff("sb-1", ["default"], timedelta(0))
            )
            await asyncio.sleep(0.3)
            assert not withdrawing.done()  # blocked on the claim's row
        [handed] = await asyncio.wait_for(withdrawing, 5)
    assert handed.job.id == str(job_id) and handed.job.status is JobStatus.RUNNING
    assert handed.lease.owner == "w" and handed.lease.token == "sb-1h"
    assert await pg.get(handed.job.id) == handed.job


async def test_a_transactional_enqueue_hands_nothing_over(
    pg: PostgresBackend, postgres_url: str
) -> None:
    assert await pg.claim(ClaimRequest(WorkerId("w"), ["default"], 1, standby="sb-1")) == []
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn, conn.transaction():
        [enq] = await pg.enqueue_in(conn, [NewJob(kind="k", payload={})])
    assert await pg.wait_for_handoff("sb-1", ["default"], timedelta(milliseconds=50)) == []
    stored = await pg.get(enq.job.id)
    assert stored is not None and stored.status is JobStatus.QUEUED


# The used claim's row deleted 0.3 s late: the window a stop's withdrawal can fall into.
SLOW_FORGET = (
    b"WITH pause AS (SELECT pg_sleep(0.3)) DELETE FROM conveyor_standby"
    b" WHERE token = %(token)s::text AND EXISTS (SELECT FROM pause)"
)


async def test_a_withdrawal_before_the_used_claim_is_deleted_collects_nothing(
    pg: PostgresBackend, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait returned the job its notification carried, and the used claim's row is
    # deleted in the background. A stop that withdraws the same claim before that DELETE
    # lands must not collect the job from the row a second time.
    monkeypatch.setattr(jobstore, "_FORGET_STANDBY", SLOW_FORGET)
    assert await pg.claim(ClaimRequest(WorkerId("w"), ["default"], 1, standby="sb-1")) == []
    waiting = asyncio.ensure_future(pg.wait_for_handoff("sb-1", ["default"], timedelta(seconds=5)))
    await asyncio.sleep(0.02)
    [enq] = await pg.enqueue([NewJob(kind="k", payload={})])
    [handed] = await asyncio.wait_for(waiting, 5)
    assert handed.job.id == enq.job.id and handed.lease.token == "sb-1h"
    assert await pg.wait_for_handoff("sb-1", ["default"], timedelta(0)) == []
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        for _ in range(100):  # the DELETE lands, and the claim is gone
            cur = await conn.execute("SELECT count(*) FROM conveyor_standby")
            if (await cur.fetchone()) == (0,):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the used standing claim was never deleted")
    stored = await pg.get(enq.job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING
