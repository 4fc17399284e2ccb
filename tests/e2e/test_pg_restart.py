"""PostgreSQL restarted (``pg_ctl restart -m immediate``: a crash, no checkpoint) in the
middle of a run: the worker processes reconnect by themselves and finish, nothing acknowledged
is lost. The test runs its own cluster with ``fsync=on`` so the session server is untouched
and an acknowledged commit really survives the crash."""

from __future__ import annotations

import pytest
from tests.e2e.conftest import Harness
from tests.e2e.scenarios import restart_mid_run
from tests.services import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(240)]


async def test_workers_survive_postgres_restart(
    harness: Harness, own_postgres: PostgresServer
) -> None:
    await restart_mid_run(
        harness, own_postgres.dsn("postgres"), lambda: own_postgres.restart("immediate")
    )
