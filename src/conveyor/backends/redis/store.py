"""The life of a job on Redis: enqueue, claim, renew, complete, fail, release, rescue,
cancel, get and progress. Each verb is one Lua script call (one round trip, atomic); batch
verbs take the whole batch in that one call.

Used by ``RedisBackend`` (which mixes this in); the scripts are in ``lua/``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import orjson

from conveyor.backend import (
    DEFAULT_MAX_RESCUES,
    ClaimedJob,
    ClaimRequest,
    Completion,
    Enqueued,
    FailRequest,
    Lease,
    RenewOutcome,
    RescueOutcome,
)
from conveyor.backends.redis.codec import (
    at,
    decoded,
    encode_error,
    job_from_fields,
    lease_of,
    micros_of,
    pairs,
)
from conveyor.backends.redis.connection import RedisCore, Reply, translated
from conveyor.clock import to_micros
from conveyor.errors import (
    BackendError,
    InvalidPayload,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    QueueFull,
)
from conveyor.ids import new_job_ids, new_token
from conveyor.jobs import Job, JobId, JSONObject, JSONValue, NewJob

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

ENQUEUE_CHUNK = 5_000  # jobs per script call; a bigger batch runs as chunks in one MULTI
PROMOTE_BOUND = 1_000  # due scheduled jobs moved to the ready set per queue per claim
QUEUE_FULL_RETRY = timedelta(seconds=5)


def as_list(reply: Reply) -> list[Reply]:
    if not isinstance(reply, list):
        raise BackendError(f"unexpected reply from a Conveyor script: {reply!r}")
    return reply


def as_bytes(reply: Reply) -> bytes:
    if not isinstance(reply, bytes):
        raise BackendError(f"unexpected reply from a Conveyor script: {reply!r}")
    return reply


def as_ids(reply: Reply) -> list[JobId]:
    return [JobId(as_bytes(item).decode()) for item in as_list(reply)]


def json_list(reply: Reply) -> list[JSONValue]:
    """A script reply that Lua encoded with cjson (one bulk string, parsed by orjson)."""
    value: JSONValue = orjson.loads(as_bytes(reply))
    if not isinstance(value, list):
        raise BackendError(f"unexpected reply from a Conveyor script: {value!r}")
    return value


def completion_args(completions: Sequence[Completion]) -> list[str | bytes]:
    """(id, token, result JSON) triples, as complete.lua and claim.lua take them."""
    args: list[str | bytes] = []
    for c in completions:
        args += [c.lease.job_id, c.lease.token, orjson.dumps(c.result)]
    return args


def job_of(job_id: JSONValue, flat: JSONValue) -> Job:
    if not isinstance(job_id, str) or not isinstance(flat, list):
        raise BackendError(f"unexpected job in a script reply: {job_id!r}")
    return job_from_fields(job_id, pairs([str(x) for x in flat]))


def claimed_of(item: JSONValue) -> ClaimedJob:
    """One claimed job of a claim reply or a handoff: [id, token, fields]."""
    if not isinstance(item, list) or len(item) != 3:
        raise BackendError(f"unexpected claimed job from a Conveyor script: {item!r}")
    job_id, token, flat = item
    job = job_of(job_id, flat)
    return ClaimedJob(job, lease_of(job, str(token)))


def _payload(job: NewJob) -> bytes:
    try:
        return orjson.dumps(job.payload)
    except orjson.JSONEncodeError as exc:
        raise InvalidPayload(f"the payload of a {job.kind!r} job is not JSON: {exc}") from exc


def _job_args(job: NewJob, job_id: str) -> list[str | bytes | int]:
    return [
        job_id,
        job.queue,
        job.kind,
        _payload(job),
        job.priority,
        "" if job.run_at is None else to_micros(job.run_at),
        "" if job.delay is None else micros_of(job.delay),
        job.max_attempts,
        "" if job.timeout is None else micros_of(job.timeout),
        job.idempotency_key or "",
        job.trace or "",
    ]


def _created(job: NewJob, job_id: str, run_at: int, now: int) -> Job:
    return job.stored(JobId(job_id), at(now), at(run_at))


class RedisJobStore:
    """The hot-path verbs. ``_core`` is set by ``RedisBackend``."""

    _core: RedisCore

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        fresh = iter(new_job_ids(sum(1 for job in jobs if job.id is None)))
        ids = [job.id or next(fresh) for job in jobs]
        chunks = [
            range(i, min(i + ENQUEUE_CHUNK, len(jobs))) for i in range(0, len(jobs), ENQUEUE_CHUNK)
        ]
        guard = new_token(8)
        calls: list[list[str | bytes | int]] = []
        for n, chunk in enumerate(chunks):
            role = (
                ""
                if len(chunks) == 1
                else ("first" if n == 0 else "last" if n == len(chunks) - 1 else "next")
            )
            later: list[str | int] = []
            if role == "first":
                rest = Counter(jobs[i].queue for i in range(chunk.stop, len(jobs)))
                for queue, count in rest.items():
                    later += [queue, count]
            args: list[str | bytes | int] = [guard, role, len(later) // 2, *later, len(chunk)]
            for i in chunk:
                args += _job_args(jobs[i], ids[i])
            calls.append(args)
        if len(calls) == 1:
            replies = [await self._core.run("enqueue", *calls[0])]
        else:
            replies = await self._core.run_in_transaction("enqueue", calls)
        first = json_list(replies[0])
        if first[0] == "queuefull":
            raise QueueFull(str(first[1]), int(str(first[2])), QUEUE_FULL_RETRY)
        out: list[Enqueued] = []
        for chunk, reply in zip(chunks, replies, strict=True):
            items = json_list(reply)
            now = int(str(items[0]))
            for i, item in zip(chunk, items[1:], strict=True):
                if isinstance(item, str):
                    out.append(Enqueued(_created(jobs[i], ids[i], int(item), now), True))
                elif isinstance(item, list):
                    out.append(Enqueued(job_of(item[0], item[1]), False))
        return out

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        return (await self.complete_and_claim((), request))[1]

    async def complete_and_claim(
        self, completions: Sequence[Completion], request: ClaimRequest
    ) -> tuple[list[JobId], list[ClaimedJob]]:
        if request.limit <= 0 or not request.queues:
            return await self.complete(completions), []
        queues = list(dict.fromkeys(request.queues))
        reply = json_list(
            await self._core.run(
                "claim",
                request.worker,
                new_token(8),
                micros_of(request.lease_for),
                request.limit,
                PROMOTE_BOUND,
                request.standby or "",
                max(1, int(request.standby_for.total_seconds() * 1000)),
                len(completions),
                *completion_args(completions),
                *queues,
            )
        )
        lost = reply[1]  # cjson writes an empty Lua table as {}
        if not isinstance(lost, list | dict):
            raise BackendError(f"unexpected claim reply: {lost!r}")
        claimed = [claimed_of(item) for item in reply[2:]]
        return [JobId(str(i)) for i in lost], claimed

    async def wait_for_handoff(
        self, standby: str, queues: Sequence[str], timeout: timedelta
    ) -> list[ClaimedJob]:
        # The BLPOP runs in the caller's task, on a pool connection of its own, so that a
        # handed job is decoded and returned in the loop iteration its reply wakes. Its reply
        # is never dropped: the read leaves the connection as it is when cancelled
        # (disconnect_on_error=False); the cancelled path withdraws the claim, which pushes
        # a 'wake' sentinel, reads the reply (the job or the sentinel) from the same
        # connection and releases a job it got. A connection whose reply could not be read
        # is closed, never reused.
        if timeout <= timedelta(0):  # withdraw, and end a wait on it that is under way
            return await self._end_standby(standby, wake=True)
        pool = self._core.client.connection_pool
        with translated():
            conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        unread = False  # a BLPOP went out and its reply is still on the connection
        try:
            with translated():
                await conn.send_command(
                    "BLPOP", self._core.key("ho", standby), self._block_seconds(timeout)
                )
                unread = True
                reply = await conn.read_response(disconnect_on_error=False)
                unread = False
        except asyncio.CancelledError:
            if unread:
                unread = not await self._withdraw(standby, conn)
            raise
        except BackendError:
            with contextlib.suppress(BackendError):
                await self._end_standby(standby, wake=False)
            raise
        finally:
            if unread:
                await conn.disconnect(nowait=True)
            await pool.release(conn)
        if reply is None:  # timed out: a job may have been handed since
            return await self._end_standby(standby, wake=False)
        item = cast("list[bytes]", reply)[1]
        return [claimed_of(orjson.loads(item))] if item != b"wake" else []

    def _block_seconds(self, timeout: timedelta) -> float:
        seconds = timeout.total_seconds()
        # A URL's socket_timeout would cut a longer block short with a TimeoutError.
        limit = self._core.client.connection_pool.connection_kwargs.get("socket_timeout")
        if limit:
            seconds = min(seconds, float(limit) / 2)
        return max(seconds, 0.01)

    async def _end_standby(self, standby: str, *, wake: bool) -> list[ClaimedJob]:
        items = as_list(await self._core.run("standby_end", standby, "1" if wake else "0"))
        return [claimed_of(orjson.loads(as_bytes(i))) for i in items if i != b"wake"]

    async def _withdraw(self, standby: str, conn: AbstractConnection) -> bool:
        """The cancelled path of ``wait_for_handoff``: withdraw the claim, read the BLPOP's
        reply off ``conn`` and release whatever was handed. False when the reply could not
        be read (Redis unreachable: a job handed before then waits for its lease to
        expire)."""
        try:
            handed = await self._end_standby(standby, wake=True)
            with translated():
                reply = await conn.read_response(disconnect_on_error=False)
        except BackendError:
            return False
        if reply is not None and (item := cast("list[bytes]", reply)[1]) != b"wake":
            handed.append(claimed_of(orjson.loads(item)))
        if handed:
            with contextlib.suppress(BackendError):
                await self.release([c.lease for c in handed])
        return True

    async def renew(self, leases: Sequence[Lease], lease_for: timedelta) -> RenewOutcome:
        if not leases:
            return RenewOutcome()
        args: list[str | int] = [micros_of(lease_for)]
        for lease in leases:
            args += [lease.job_id, lease.token]
        renewed, lost, cancel = as_list(await self._core.run("renew", *args))
        return RenewOutcome(
            renewed=frozenset(as_ids(renewed)),
            lost=frozenset(as_ids(lost)),
            cancel_requested=frozenset(as_ids(cancel)),
        )

    async def complete(self, completions: Sequence[Completion]) -> list[JobId]:
        if not completions:
            return []
        return as_ids(await self._core.run("complete", *completion_args(completions)))

    async def fail(self, request: FailRequest) -> Job:
        lease = request.lease
        reply = json_list(
            await self._core.run(
                "fail",
                lease.job_id,
                lease.token,
                b"" if request.error is None else encode_error(request.error),
                "" if request.retry_after is None else micros_of(request.retry_after),
                "1" if request.charge_attempt else "0",
            )
        )
        if reply[0] != "ok":
            raise LeaseLost(lease.job_id)
        return job_of(lease.job_id, reply[1])

    async def release(self, leases: Sequence[Lease]) -> list[JobId]:
        if not leases:
            return []
        args: list[str] = []
        for lease in leases:
            args += [lease.job_id, lease.token]
        return as_ids(await self._core.run("release", *args))

    async def rescue(
        self, limit: int = 1000, max_rescues: int = DEFAULT_MAX_RESCUES
    ) -> RescueOutcome:
        requeued, failed, cancelled = as_list(
            await self._core.run("rescue", max(limit, 0), max_rescues)
        )
        return RescueOutcome(
            requeued=tuple(as_ids(requeued)),
            failed=tuple(as_ids(failed)),
            cancelled=tuple(as_ids(cancelled)),
        )

    async def cancel(self, job_id: JobId) -> Job:
        reply = json_list(await self._core.run("cancel", job_id))
        if reply[0] == "notfound":
            raise JobNotFound(job_id)
        if reply[0] == "invalid":
            raise InvalidTransition(job_id, str(reply[1]), "cancel")
        return job_of(job_id, reply[1])

    async def get(self, job_id: JobId) -> Job | None:
        with translated():
            fields = cast(
                "dict[bytes, bytes]", await self._core.client.hgetall(self._core.key("job", job_id))
            )
        return job_from_fields(job_id, decoded(fields)) if fields else None

    async def set_progress(self, lease: Lease, progress: JSONObject) -> None:
        done = await self._core.run("progress", lease.job_id, lease.token, orjson.dumps(progress))
        if done != 1:
            raise LeaseLost(lease.job_id)
