"""The task module the e2e workers run (``--app tests.e2e.ledger_tasks:app``).

``record`` sleeps for its payload's ``sleep_ms`` (so that jobs are in flight when a process is
killed or signalled), then appends (marker, job id, attempt, pid, start, end) to the ledger
named by ``CONVEYOR_E2E_LEDGER`` and returns only once that row is committed. The database
URL comes from ``CONVEYOR_DATABASE_URL`` (or the worker's ``--database-url``).
"""

from __future__ import annotations

import asyncio
import os

from tests.e2e.ledger import LEDGER_ENV, Execution, LedgerWriter, current_pid, now

from conveyor.app import Conveyor
from conveyor.handler import JobContext

KIND = "e2e.record"
QUEUE = "e2e"

app = Conveyor()

_writer: LedgerWriter | None = None


def _ledger() -> LedgerWriter:
    global _writer
    if _writer is None:
        _writer = LedgerWriter(os.environ[LEDGER_ENV])
    return _writer


@app.task(name=KIND, queue=QUEUE, max_attempts=20)
async def record(ctx: JobContext, marker: str, sleep_ms: float = 0.0) -> str:
    started = now()
    if sleep_ms > 0:
        await asyncio.sleep(sleep_ms / 1000.0)
    await _ledger().record(
        Execution(
            marker=marker,
            job_id=str(ctx.job.id),
            attempt=ctx.attempt,
            pid=current_pid(),
            started=started,
            finished=now(),
        )
    )
    return marker
