"""Example tasks, used by ``make run`` and the README: a no-op, a sleep, an e-mail sender
(the README's Python example), and one that fails at random (to watch retries and the
dead-letter queue at work).

    conveyor worker --app examples.tasks:app
    python -c "from examples.tasks import noop; print(noop.enqueue().id)"
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from conveyor import Conveyor, Discard, JobContext

app = Conveyor()  # CONVEYOR_DATABASE_URL, else sqlite:///conveyor.db


@app.task
async def noop() -> None:
    """Does nothing: the benchmark's job."""


@app.task(timeout=timedelta(minutes=5))
async def sleep(seconds: float, ctx: JobContext) -> dict[str, float]:
    """Sleeps, reporting progress every second."""
    elapsed = 0.0
    while elapsed < seconds:
        step = min(1.0, seconds - elapsed)
        await asyncio.sleep(step)
        elapsed += step
        await ctx.set_progress({"percent": round(100 * elapsed / seconds)})
    return {"slept": seconds}


@app.task(max_attempts=5, retry_backoff=timedelta(seconds=1))
def flaky(failure_rate: float = 0.5) -> str:
    """A sync task that fails at random; after 5 failed attempts it lands in the DLQ."""
    if random.random() < failure_rate:
        raise RuntimeError("bad luck")
    return "ok"


@app.task(queue="emails", max_attempts=8, timeout=timedelta(seconds=30))
async def send_email(to: str, subject: str) -> dict[str, str]:
    """Pretends to send an e-mail. An address without "@" can never work: Discard it."""
    if "@" not in to:
        raise Discard(f"not an e-mail address: {to!r}")
    await asyncio.sleep(0.01)
    return {"sent_to": to, "subject": subject}
