"""PostgreSQL's standing claims (migration 4) where they meet other transactions: the
enqueue that hands a job over holds the claim's row until it commits, and a transactional
enqueue (``enqueue_in``) never hands over."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest

from conveyor.backend import ClaimRequest
from conveyor.backends.postgres import PostgresBackend
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
