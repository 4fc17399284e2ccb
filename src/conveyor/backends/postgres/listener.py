"""LISTEN/NOTIFY wake-ups for ``PostgresBackend.wait_for_work``.

One dedicated connection per backend (never from the pool: a pooled connection would be
reset or handed to someone else), opened by the first wait or standing claim (a backend that
only enqueues never listens), runs ``LISTEN conveyor_jobs``; every enqueue, release,
rescue and requeue that makes jobs claimable sends ``NOTIFY conveyor_jobs, '<queue>'``.
Waiters whose queues match are woken. The connection also LISTENs on a channel of its own
(``channel``): a job handed to a standing claim registered by this process (handoff, D21)
comes there, ``NOTIFY <channel>, '<token> <job as JSON>'`` (the bare token for a job too big
for a notification).

A notification is only a hint (RELIABILITY.md, promise 6): it is lost across reconnects,
so when the connection breaks the listener reconnects with capped, jittered backoff and,
meanwhile, ``wait`` just sleeps (the caller's poll is the backstop). After a reconnect
every waiter is woken once, since notifications sent in the gap were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from psycopg import sql

from conveyor.ids import new_token

log = logging.getLogger(__name__)

CHANNEL = "conveyor_jobs"
_LISTEN = b"LISTEN conveyor_jobs"
WILDCARD = "*"  # sent for a queue name too long for a NOTIFY payload
BACKOFF_START = timedelta(milliseconds=100)
BACKOFF_CAP = timedelta(seconds=5)
CONNECT_TIMEOUT_SECONDS = 5


@dataclass(eq=False)
class _Waiter:
    queues: frozenset[str]
    event: asyncio.Event = field(default_factory=asyncio.Event)
    handed: str | None = None  # a standing claim's: what its handoff carried


class Listener:
    def __init__(self, conninfo: str, first_connect: timedelta = timedelta(seconds=5)) -> None:
        self._conninfo = conninfo
        self._first_connect = first_connect
        self._stopped = False
        self._waiters: set[_Waiter] = set()
        self._standing: dict[str, _Waiter] = {}
        self.channel = f"conveyor_ho_{new_token(8)}"
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.connections = 0  # successful LISTENs so far (tests watch reconnects)

    async def ensure_started(self) -> None:
        """Listen from now on, in the background. Started by the first wait or standing
        claim, not when the backend opens: a process that only enqueues (the API, an
        application's client) would otherwise be sent every notification, one server and
        one client wake-up per enqueue (docs/performance.md, "Sixth pass"). The call that
        starts it waits up to ``first_connect`` for the first LISTEN and carries on degraded
        (polling) if it does not come; after ``stop`` it does nothing."""
        if self._task is not None or self._stopped:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="conveyor-postgres-listener"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), self._first_connect.total_seconds())

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for waiter in self._waiters:
            waiter.event.set()

    async def wait(self, queues: Sequence[str], timeout: timedelta) -> bool:
        waiter = await self._wait(queues, timeout, None)
        return waiter is not None and waiter.event.is_set()

    async def wait_handoff(
        self, token: str, queues: Sequence[str], timeout: timedelta
    ) -> str | None:
        """Wait like ``wait``, also woken by ``end_standing(token)`` and by the handoff to
        standing claim ``token`` (a NOTIFY on ``channel``): then returns what it carried
        (the job as JSON, or "" when the job was too big for a notification). A handoff
        that arrives after this returned is ignored: the caller collects the job instead."""
        waiter = await self._wait(queues, timeout, token)
        return None if waiter is None else waiter.handed

    async def _wait(
        self, queues: Sequence[str], timeout: timedelta, token: str | None
    ) -> _Waiter | None:
        """The waiter once woken or timed out; None when there is no connection to listen
        on (it slept the timeout)."""
        seconds = max(0.0, timeout.total_seconds())
        if not self.connected.is_set():
            await asyncio.sleep(seconds)
            return None
        waiter = _Waiter(frozenset(queues))
        self._waiters.add(waiter)
        if token is not None:
            self._standing[token] = waiter
        try:
            # asyncio.timeout, not wait_for: the event wakes this task directly, where
            # wait_for (3.11) runs the wait in a task of its own, two loop hops more
            # between a handoff's notification and its job's start.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter.event.wait()
        finally:
            self._waiters.discard(waiter)
            if token is not None and self._standing.get(token) is waiter:
                del self._standing[token]
        return waiter

    def end_standing(self, token: str) -> bool:
        """Stop routing ``token``'s handoff to its wait, and end that wait. True when the
        handoff had already arrived: that wait returns the job, so the caller must not
        collect it too; False when the caller collects whatever was handed."""
        waiter = self._standing.pop(token, None)
        if waiter is None:
            return False
        waiter.event.set()
        return waiter.handed is not None

    def _handed(self, payload: str) -> None:
        token, _, job = payload.partition(" ")
        waiter = self._standing.get(token)
        if waiter is not None:
            waiter.handed = job
            waiter.event.set()

    def _dispatch(self, queue: str | None) -> None:
        for waiter in self._waiters:
            if queue is None or queue == WILDCARD or queue in waiter.queues:
                waiter.event.set()

    async def _run(self) -> None:
        backoff = BACKOFF_START.total_seconds()
        while True:
            try:
                await self._listen_once()
                backoff = BACKOFF_START.total_seconds()
            except (psycopg.Error, OSError) as exc:
                log.warning("conveyor listener lost its connection: %s", exc)
            except Exception:  # never let the listener die: wait_for_work would only poll
                log.exception("conveyor listener failed; reconnecting")
            delay = backoff * (0.5 + random.random() / 2)
            backoff = min(backoff * 2, BACKOFF_CAP.total_seconds())
            await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        try:
            await conn.execute(_LISTEN)
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.connections += 1
            self.connected.set()
            if self.connections > 1:
                self._dispatch(None)  # notifications during the gap were lost
            async for notify in conn.notifies():
                if notify.channel == self.channel:
                    self._handed(notify.payload)
                else:
                    self._dispatch(notify.payload)
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await conn.close()
