"""Redis killed (SIGKILL) and restarted in the middle of a run, with ``appendonly yes`` and
``appendfsync always``: no acknowledged job is lost, and the worker processes (and the
producer) reconnect by themselves. The test runs its own server so the session's is
untouched."""

from __future__ import annotations

import pytest
from tests.e2e.conftest import Harness
from tests.e2e.scenarios import restart_mid_run
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(240)]


async def test_workers_survive_redis_crash_and_restart(
    harness: Harness, own_redis: RedisServer
) -> None:
    await restart_mid_run(harness, f"{own_redis.url}?prefix=e2e", own_redis.restart)
