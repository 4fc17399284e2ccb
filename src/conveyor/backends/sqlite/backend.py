"""``SQLiteBackend``: the embedded, zero-setup engine. One file, several processes (API and
workers) on one machine.

Called through the ``conveyor.backend.Backend`` protocol (``open_backend("sqlite:///...")``).
This class is the async facade only: each verb runs one function of ``enqueue``,
``leases``, ``lifecycle``, ``records`` (writes, on the writer thread inside ``BEGIN
IMMEDIATE``) or ``reads`` (on a reader thread), see ``connection.py``. The clock is read
inside the transaction, on the writer thread, so times are ordered like the commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from conveyor.backend import (
    DEFAULT_MAX_RESCUES,
    Capability,
    ClaimedJob,
    ClaimRequest,
    Completion,
    Enqueued,
    FailRequest,
    Lease,
    ListRequest,
    LogLine,
    MigrationStatus,
    Page,
    PurgeRequest,
    QueueSettings,
    QueueStats,
    Record,
    RenewOutcome,
    RequeueRequest,
    RescueOutcome,
    TokenRecord,
    WithoutHandoff,
    WorkerInfo,
)
from conveyor.backends.sqlite import enqueue as enqueue_sql
from conveyor.backends.sqlite import (
    leases,
    lifecycle,
    migrations,
    reads,
    records,
    records_cas,
    wakeups,
)
from conveyor.backends.sqlite.connection import Database, check_version, parse_url
from conveyor.clock import Clock, SystemClock
from conveyor.errors import BackendError, JobNotFound
from conveyor.jobs import Job, JobId, JSONObject, NewJob, WorkerId

T = TypeVar("T")


class SQLiteBackend(WithoutHandoff):
    """The SQLite engine. Declares MULTI_PROCESS (several processes may share the file) and
    NOTIFY (``wait_for_work`` wakes within a few ms of an enqueue in this or another process:
    see ``wakeups.py``), not MULTI_HOST: SQLite's locking needs one machine's file system."""

    capabilities = frozenset({Capability.MULTI_PROCESS, Capability.NOTIFY})

    def __init__(self, url: str, *, clock: Clock | None = None, migrate: bool = True) -> None:
        self.path = parse_url(url)
        self.url = url
        self._clock: Clock = clock or SystemClock()
        self._migrate = migrate
        self._db: Database | None = None
        # wait_for_work callers of this handle, woken by close() (they then return False).
        self._sleepers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        check_version()
        if self._db is not None:
            return
        db = Database(self.path)
        try:
            await db.open()
            if self._migrate:
                await db.write_raw(partial(migrations.migrate, clock=self._clock))
            else:
                await db.write_raw(migrations.require_current)
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        for loop, event in list(self._sleepers):
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)
        if db is not None:
            await db.close()

    async def migrate(self) -> MigrationStatus:
        return await self._database().write_raw(partial(migrations.migrate, clock=self._clock))

    async def migration_status(self) -> MigrationStatus:
        return await self._database().read(migrations.status)

    async def now(self) -> datetime:
        return self._clock.now()

    async def wait_for_work(self, queues: Sequence[str], timeout: timedelta) -> bool:
        """Wakes on an in-process notify or a commit by any process (``wakeups.py``), then
        returns True only if one of ``queues`` has a job claimable now. ``close()`` wakes it
        (it then returns False)."""
        db = self._database()
        names = list(dict.fromkeys(queues))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout.total_seconds(), 0.0)
        with wakeups.registered(self.path) as event, db.watcher.held():
            sleeper = (loop, event)
            self._sleepers.add(sleeper)
            try:
                return await self._sleep(db, event, names, deadline)
            finally:
                self._sleepers.discard(sleeper)

    async def _sleep(
        self, db: Database, event: asyncio.Event, queues: list[str], deadline: float
    ) -> bool:
        loop = asyncio.get_running_loop()
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                break
            event.clear()
            if self._db is not db:  # closed meanwhile
                return False
            now = self._clock.now()
            try:
                if await db.read(partial(wakeups.claimable, queues=queues, now=now)):
                    return True
            except BackendError:
                if self._db is not db:  # closed while checking
                    return False
                raise
        return False

    # ------------------------------------------------------------------ jobs

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        if not jobs:
            return []
        batch = list(jobs)
        outcomes = await self._write(lambda conn, now: enqueue_sql.enqueue(conn, batch, now))
        if any(outcome.created for outcome in outcomes):
            wakeups.notify(self.path)
        return outcomes

    async def claim(self, request: ClaimRequest) -> list[ClaimedJob]:
        clock = self._clock

        def undo(conn: sqlite3.Connection, claimed: list[ClaimedJob]) -> None:
            leases.release(conn, [c.lease for c in claimed], clock.now())

        return await self._database().write_undoable(
            lambda conn: leases.claim(conn, request, clock.now()), undo
        )

    async def renew(self, leases_: Sequence[Lease], lease_for: timedelta) -> RenewOutcome:
        if not leases_:
            return RenewOutcome()
        batch = list(leases_)
        return await self._write(partial(leases.renew, leases=batch, lease_for=lease_for))

    async def complete(self, completions: Sequence[Completion]) -> list[JobId]:
        if not completions:
            return []
        return await self._write(partial(leases.complete, completions=list(completions)))

    async def complete_and_claim(
        self, completions: Sequence[Completion], request: ClaimRequest
    ) -> tuple[list[JobId], list[ClaimedJob]]:
        clock = self._clock
        done = list(completions)

        def work(conn: sqlite3.Connection) -> tuple[list[JobId], list[ClaimedJob]]:
            now = clock.now()
            lost = leases.complete(conn, done, now) if done else []
            return lost, leases.claim(conn, request, now)

        def undo(conn: sqlite3.Connection, outcome: tuple[list[JobId], list[ClaimedJob]]) -> None:
            leases.release(conn, [c.lease for c in outcome[1]], clock.now())

        return await self._database().write_undoable(work, undo)

    async def fail(self, request: FailRequest) -> Job:
        job = await self._write(partial(leases.fail, request=request))
        if job.status.is_waiting:
            wakeups.notify(self.path)
        return job

    async def release(self, leases_: Sequence[Lease]) -> list[JobId]:
        if not leases_:
            return []
        lost = await self._write(partial(leases.release, leases=list(leases_)))
        wakeups.notify(self.path)
        return lost

    async def rescue(
        self, limit: int = 1000, max_rescues: int = DEFAULT_MAX_RESCUES
    ) -> RescueOutcome:
        outcome = await self._write(partial(lifecycle.rescue, limit=limit, max_rescues=max_rescues))
        if outcome.requeued:
            wakeups.notify(self.path)
        return outcome

    async def cancel(self, job_id: JobId) -> Job:
        return await self._write(partial(lifecycle.cancel, job_id=job_id))

    async def requeue(self, request: RequeueRequest) -> list[JobId]:
        ids = await self._write(partial(lifecycle.requeue, request=request))
        if ids:
            wakeups.notify(self.path)
        return ids

    async def get(self, job_id: JobId) -> Job | None:
        return await self._database().read(partial(reads.get, job_id=job_id))

    async def list_jobs(self, request: ListRequest) -> Page:
        return await self._database().read(partial(reads.list_jobs, request=request))

    async def set_progress(self, lease: Lease, progress: JSONObject) -> None:
        await self._write(partial(leases.set_progress, lease=lease, progress=progress))

    async def purge(self, request: PurgeRequest) -> int:
        return await self._write(partial(lifecycle.purge, request=request))

    # ------------------------------------------------------------------ queues

    async def stats(self) -> list[QueueStats]:
        now = self._clock.now()
        return await self._database().read(partial(reads.stats, now=now))

    async def configure_queue(self, settings: QueueSettings) -> QueueSettings:
        stored = await self._database().write(partial(records.configure_queue, settings=settings))
        if not stored.paused:
            wakeups.notify(self.path)
        return stored

    async def queue_settings(self, queue: str) -> QueueSettings:
        return await self._database().read(partial(reads.queue_settings, queue=queue))

    # ------------------------------------------------------------------ logs

    async def append_log(self, job_id: JobId, lines: Sequence[str]) -> None:
        if not lines:
            # Nothing to write, but a missing job is still an error.
            if not await self._database().read(partial(reads.job_exists, job_id=job_id)):
                raise JobNotFound(job_id)
            return
        batch = [str(line) for line in lines]
        await self._write(partial(records.append_log, job_id=job_id, lines=batch))

    async def read_log(self, job_id: JobId, after: int = 0, limit: int = 1000) -> list[LogLine]:
        return await self._database().read(
            partial(reads.read_log, job_id=job_id, after=after, limit=limit)
        )

    # ------------------------------------------------------------------ workers

    async def upsert_worker(self, info: WorkerInfo) -> None:
        await self._write(partial(records.upsert_worker, info=info))

    async def list_workers(self, seen_within: timedelta) -> list[WorkerInfo]:
        now = self._clock.now()
        return await self._database().read(
            partial(reads.list_workers, seen_within=seen_within, now=now)
        )

    async def remove_worker(self, worker_id: WorkerId) -> None:
        await self._database().write(partial(records.remove_worker, worker_id=worker_id))

    # ------------------------------------------------------------------ tokens

    async def create_token(self, record: TokenRecord) -> None:
        await self._database().write(partial(records.create_token, record=record))

    async def list_tokens(self) -> list[TokenRecord]:
        return await self._database().read(reads.list_tokens)

    async def find_token(self, secret_hash: str) -> TokenRecord | None:
        return await self._database().read(partial(reads.find_token, secret_hash=secret_hash))

    async def revoke_token(self, token_id: str) -> bool:
        return await self._write(partial(records.revoke_token, token_id=token_id))

    # ------------------------------------------------------------------ records

    async def get_record(self, namespace: str, key: str) -> Record | None:
        return await self._database().read(
            partial(records_cas.get_record, namespace=namespace, key=key)
        )

    async def list_records(self, namespace: str) -> list[Record]:
        return await self._database().read(partial(records_cas.list_records, namespace=namespace))

    async def put_record(
        self, namespace: str, key: str, value: JSONObject, expect_version: int | None = None
    ) -> Record:
        return await self._write(
            partial(
                records_cas.put_record,
                namespace=namespace,
                key=key,
                value=value,
                expect_version=expect_version,
            )
        )

    async def delete_record(self, namespace: str, key: str) -> bool:
        return await self._database().write(
            partial(records_cas.delete_record, namespace=namespace, key=key)
        )

    # ------------------------------------------------------------------ plumbing

    def _database(self) -> Database:
        if self._db is None:
            raise BackendError("the SQLite backend is not open: await backend.open() first")
        return self._db

    async def _write(self, work: Callable[..., T]) -> T:
        """Run ``work(conn, now=...)`` in a write transaction; ``now`` is read on the writer
        thread once the write lock is held."""
        clock = self._clock
        return await self._database().write(lambda conn: work(conn, now=clock.now()))

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.url!r})"
