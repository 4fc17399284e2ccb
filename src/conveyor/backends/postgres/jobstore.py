"""``JobStore`` for PostgreSQL: the verbs of a job's life, one SQL statement (one round trip)
each, from ``sql/*.sql``. Mixed into ``PostgresBackend``; enqueue itself lives in
``enqueue.py``, shared with the transactional ``PostgresBackend.enqueue_in``.

Every transition out of ``running`` is fenced in SQL on ``status = 'running' AND
lease_token = <the lease's token>``; the batch verbs (renew, complete, release) send their
leases as arrays and learn which ones were lost from what the statement returned.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import timedelta

import orjson

from conveyor.backend import (
    DEFAULT_MAX_RESCUES,
    LIST_LIMIT_MAX,
    ClaimedJob,
    ClaimRequest,
    Completion,
    Enqueued,
    FailRequest,
    JobFilter,
    Lease,
    ListRequest,
    Page,
    PurgeRequest,
    RenewOutcome,
    RequeueRequest,
    RescueOutcome,
)
from conveyor.backends.postgres.database import Database
from conveyor.backends.postgres.enqueue import enqueue_rows
from conveyor.backends.postgres.listener import Listener
from conveyor.backends.postgres.queries import QUERIES
from conveyor.backends.postgres.rows import (
    dumps,
    error_json,
    job_from_handoff,
    job_from_row,
    parse_id,
    parse_ids,
)
from conveyor.errors import (
    BackendError,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
)
from conveyor.jobs import Job, JobId, JobStatus, JSONObject, NewJob, WorkerId

REQUEUABLE = (JobStatus.FAILED, JobStatus.CANCELLED)


def _filter_params(flt: JobFilter) -> dict[str, object] | None:
    """Parameters shared by list and requeue; None when the filter can match nothing."""
    ids = parse_ids(flt.ids)
    if flt.ids and not ids:
        return None
    return {
        "queues": sorted(flt.queues) or None,
        "kinds": sorted(flt.kinds) or None,
        "ids": ids or None,
        "created_after": flt.created_after,
        "created_before": flt.created_before,
    }


def _leases_json(leases: Sequence[Lease]) -> str:
    """Leases as one JSON array of {id, token}; ids that are not UUIDs are left out (they
    cannot be current, so they come back as lost)."""
    items = [
        {"id": lease.job_id, "token": lease.token}
        for lease in leases
        if parse_id(lease.job_id) is not None
    ]
    return orjson.dumps(items).decode()


def completions_json(completions: Sequence[Completion]) -> str:
    """The batch as complete_claim.sql reads it; ids that are not UUIDs cannot be stored jobs
    and are left out (they come back as lost)."""
    batch = [
        {"id": c.lease.job_id, "token": c.lease.token, "result": c.result}
        for c in completions
        if parse_id(c.lease.job_id) is not None
    ]
    try:
        return orjson.dumps(batch).decode()
    except TypeError as exc:
        raise ValueError(f"a result is not JSON-serialisable: {exc}") from exc


def _lost(leases: Sequence[Lease], kept: AbstractSet[str]) -> list[JobId]:
    return list(dict.fromkeys(lease.job_id for lease in leases if lease.job_id not in kept))


_FORGET_STANDBY = b"DELETE FROM conveyor_standby WHERE token = %(token)s::text"


def _handed(job: Job, standby: str) -> ClaimedJob:
    """A job handed to standing claim ``standby``: its lease token is the claim's + "h"."""
    return ClaimedJob(
        job, Lease(job.id, job.lease_owner or WorkerId(""), f"{standby}h", job.attempts)
    )


class PostgresJobStore:
    _db: Database
    _listener: Listener
    _forgetting: set[asyncio.Future[None]]
    # Standing claims whose job the notification delivered and whose row may still be there
    # (the background DELETE has not landed): a withdrawal of one must not collect the job.
    _delivered: set[str]

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        async with self._db.cursor() as cur:
            return await enqueue_rows(cur, jobs, self._db)

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        return (await self.complete_and_claim((), request))[1]

    async def complete_and_claim(
        self, completions: Sequence[Completion], request: ClaimRequest
    ) -> tuple[list[JobId], list[ClaimedJob]]:
        queues = list(dict.fromkeys(request.queues)) if request.limit > 0 else []
        if not queues and not completions:
            return [], []
        params: dict[str, object] = {
            "now": self._db.now_param(),
            "completions": completions_json(completions),
            "limit": max(request.limit, 0),
            "worker": request.worker,
            "lease_for": request.lease_for,
            "queues": queues,
        }
        query = QUERIES.complete_claim
        if request.standby and queues:
            await self._listener.ensure_started()
            if self._listener.connected.is_set():
                # Only with a listener to hear the handoff: else the wait just polls.
                query = QUERIES.complete_claim_standby
                params.update(
                    standby=request.standby,
                    channel=self._listener.channel,
                    standby_for=request.standby_for,
                )
        async with self._db.cursor() as cur:
            await cur.execute(query, params)
            rows = await cur.fetchall()
        refused = {str(row["id"]) for row in rows if row["status"] is None}
        leases = [c.lease for c in completions]
        kept = {lease.job_id for lease in leases if parse_id(lease.job_id) is not None}
        lost = _lost(leases, kept - refused)
        jobs = sorted(
            (
                (job_from_row(row), str(row["lease_token"]))
                for row in rows
                if row["status"] is not None
            ),
            key=lambda pair: (-pair[0].priority, pair[0].run_at, pair[0].id),
        )
        return lost, [
            ClaimedJob(
                job=job,
                lease=Lease(job_id=job.id, owner=request.worker, token=token, attempt=job.attempts),
            )
            for job, token in jobs
        ]

    async def wait_for_handoff(
        self, standby: str, queues: Sequence[str], timeout: timedelta
    ) -> list[ClaimedJob]:
        # The NOTIFY on this process's channel carries the job while the wait is on; after
        # it, whoever deletes the standing claim's row gets the job named there (job_id).
        if timeout <= timedelta(0):
            if standby in self._delivered:
                return []  # a wait already returned its job, carried by the notification
            # End a wait on it under way first, so that a handoff arriving from now on is
            # collected here and not also delivered to that wait.
            if self._listener.end_standing(standby):
                return []  # already delivered to that wait, which returns it
            return await self._end_standby(standby)
        collect: asyncio.Future[list[ClaimedJob]] | None = None
        await self._listener.ensure_started()
        try:
            carried = await self._listener.wait_handoff(standby, queues, timeout)
            if carried:
                self._forget_standby(standby)
                return [_handed(job_from_handoff(carried), standby)]
            collect = asyncio.ensure_future(self._end_standby(standby))
            return await asyncio.shield(collect)
        except asyncio.CancelledError:
            # Cancelled: withdraw (or finish collecting), and give back what was handed.
            with contextlib.suppress(BackendError):
                left = await asyncio.shield(collect or self._end_standby(standby))
                if left:
                    await asyncio.shield(self.release([c.lease for c in left]))
            raise

    def _forget_standby(self, token: str) -> None:
        """Delete a used standing claim's row in the background (its job is started).
        Until that lands, the row still names the job, so a withdrawal of the same claim
        (a stop racing the wait's return) is answered from ``_delivered`` instead: the job
        is the wait's, never the withdrawal's too. A failed DELETE leaves the token there
        (the row expires and is swept by a later standing claim)."""
        self._delivered.add(token)

        async def forget() -> None:
            # Yield once first: the handed job's task, created right after this one, then
            # starts before this sends its DELETE (~0.1 ms of a pickup otherwise).
            await asyncio.sleep(0)
            with contextlib.suppress(BackendError):
                async with self._db.cursor() as cur:
                    await cur.execute(_FORGET_STANDBY, {"token": token})
                self._delivered.discard(token)

        task = asyncio.ensure_future(forget())
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def _end_standby(self, token: str) -> list[ClaimedJob]:
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.standby_end, {"token": token, "lease": f"{token}h"})
            rows = await cur.fetchall()
        return [_handed(job_from_row(row), token) for row in rows]

    async def renew(self, leases: Sequence[Lease], lease_for: timedelta) -> RenewOutcome:
        if not leases:
            return RenewOutcome()
        params = {
            "now": self._db.now_param(),
            "leases": _leases_json(leases),
            "lease_for": lease_for,
        }
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.renew, params)
            rows = await cur.fetchall()
        renewed = {str(row["id"]) for row in rows}
        return RenewOutcome(
            renewed=frozenset(JobId(i) for i in renewed),
            lost=frozenset(_lost(leases, renewed)),
            cancel_requested=frozenset(JobId(str(r["id"])) for r in rows if r["cancel_requested"]),
        )

    async def complete(self, completions: Sequence[Completion]) -> list[JobId]:
        if not completions:
            return []
        request = ClaimRequest(WorkerId(""), (), 0)
        return (await self.complete_and_claim(completions, request))[0]

    async def fail(self, request: FailRequest) -> Job:
        job_id = parse_id(request.lease.job_id)
        if job_id is None:
            raise LeaseLost(request.lease.job_id)
        params = {
            "now": self._db.now_param(),
            "id": job_id,
            "token": request.lease.token,
            "retry_after": request.retry_after,
            "charge": request.charge_attempt,
            "error": error_json(request.error),
        }
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.fail, params)
            row = await cur.fetchone()
        if row is None:
            raise LeaseLost(request.lease.job_id)
        return job_from_row(row)

    async def release(self, leases: Sequence[Lease]) -> list[JobId]:
        if not leases:
            return []
        params = {"now": self._db.now_param(), "leases": _leases_json(leases)}
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.release, params)
            rows = await cur.fetchall()
        return _lost(leases, {str(row["id"]) for row in rows})

    async def rescue(
        self, limit: int = 1000, max_rescues: int = DEFAULT_MAX_RESCUES
    ) -> RescueOutcome:
        if limit <= 0:
            return RescueOutcome()
        params = {"now": self._db.now_param(), "limit": limit, "max_rescues": max_rescues}
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.rescue, params)
            rows = await cur.fetchall()
        by_status: dict[str, list[JobId]] = {"queued": [], "failed": [], "cancelled": []}
        for row in rows:
            by_status[str(row["status"])].append(JobId(str(row["id"])))
        return RescueOutcome(
            requeued=tuple(by_status["queued"]),
            failed=tuple(by_status["failed"]),
            cancelled=tuple(by_status["cancelled"]),
        )

    async def cancel(self, job_id: JobId) -> Job:
        parsed = parse_id(job_id)
        if parsed is None:
            raise JobNotFound(job_id)
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.cancel, {"now": self._db.now_param(), "id": parsed})
            row = await cur.fetchone()
            if row is not None:
                return job_from_row(row)
            await cur.execute(QUERIES.job_exists, {"id": parsed})
            existing = await cur.fetchone()
        if existing is None:
            raise JobNotFound(job_id)
        raise InvalidTransition(job_id, str(existing["status"]), "cancel")

    async def requeue(self, request: RequeueRequest) -> list[JobId]:
        wanted = request.filter.statuses or frozenset(REQUEUABLE)
        statuses = [s.value for s in REQUEUABLE if s in wanted]
        params = _filter_params(request.filter)
        if not statuses or params is None or request.limit <= 0:
            return []
        params |= {"now": self._db.now_param(), "statuses": statuses, "limit": request.limit}
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.requeue, params)
            rows = await cur.fetchall()
        return [JobId(str(row["id"])) for row in rows]

    async def get(self, job_id: JobId) -> Job | None:
        parsed = parse_id(job_id)
        if parsed is None:
            return None
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.get, {"id": parsed})
            row = await cur.fetchone()
        return None if row is None else job_from_row(row)

    async def list_jobs(self, request: ListRequest) -> Page:
        limit = max(1, min(request.limit, LIST_LIMIT_MAX))
        cursor = None
        if request.cursor is not None:
            cursor = parse_id(request.cursor)
            if cursor is None:
                raise ValueError(f"invalid cursor {request.cursor!r}")
        params = _filter_params(request.filter)
        if params is None:
            return Page(jobs=(), next_cursor=None)
        params |= {
            "cursor": cursor,
            "statuses": sorted(s.value for s in request.filter.statuses) or None,
            "limit": limit + 1,
        }
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.list_jobs, params)
            rows = await cur.fetchall()
        jobs = tuple(job_from_row(row) for row in rows[:limit])
        next_cursor = str(jobs[-1].id) if len(rows) > limit else None
        return Page(jobs=jobs, next_cursor=next_cursor)

    async def set_progress(self, lease: Lease, progress: JSONObject) -> None:
        job_id = parse_id(lease.job_id)
        if job_id is None:
            raise LeaseLost(lease.job_id)
        params = {
            "now": self._db.now_param(),
            "id": job_id,
            "token": lease.token,
            "progress": dumps(progress),
        }
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.set_progress, params)
            row = await cur.fetchone()
        if row is None:
            raise LeaseLost(lease.job_id)

    async def purge(self, request: PurgeRequest) -> int:
        if request.limit <= 0:
            return 0
        params = {
            "now": self._db.now_param(),
            "completed": request.completed_older_than,
            "failed": request.failed_older_than,
            "cancelled": request.cancelled_older_than,
            "limit": request.limit,
        }
        async with self._db.cursor() as cur:
            await cur.execute(QUERIES.purge, params)
            rows = await cur.fetchall()
        return len(rows)
