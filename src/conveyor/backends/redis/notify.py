"""Wake-ups for ``wait_for_work``: the enqueue, release, rescue and requeue scripts PUBLISH
the queue name on ``<prefix>:notify``; one subscriber task per backend (a dedicated pub/sub
connection) wakes the waiters of that queue.

A hint only: messages sent while the subscriber is (re)connecting are lost, and a broken
subscription just lets waiters sleep to their timeout while it reconnects with backoff.
The worker polls anyway. Used by ``RedisBackend``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from redis import exceptions as rexc

from conveyor.backends.redis.connection import RedisCore

log = logging.getLogger("conveyor.backends.redis")


class Notifier:
    def __init__(self, core: RedisCore) -> None:
        self._core = core
        self._channel = core.key("notify")
        self._waiters: dict[asyncio.Future[bool], frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, queues: Sequence[str], timeout: timedelta) -> bool:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="conveyor-redis-notify")
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[waiter] = frozenset(queues)
        try:
            return await asyncio.wait_for(waiter, max(timeout.total_seconds(), 0.0))
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(waiter, None)

    def _wake(self, queue: str) -> None:
        for waiter, queues in list(self._waiters.items()):
            if queue in queues and not waiter.done():
                waiter.set_result(True)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._core.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                delay = 0.1
                async for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self._wake(data.decode() if isinstance(data, bytes) else str(data))
            except (rexc.RedisError, OSError) as exc:
                log.info("Redis notifications interrupted (%s); waiters poll meanwhile", exc)
            finally:
                with contextlib.suppress(rexc.RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        """Stop listening; sleeping waiters return False at once rather than hang."""
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(False)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
