"""Built-in demo tasks that ``conveyor up`` runs when no ``--app`` is given, so a newcomer has
something to submit in the first five minutes:

* ``conveyor.echo``: returns ``{"message": ...}``, with one log line;
* ``conveyor.sleep``: sleeps ``seconds`` (at most 300), reporting progress and log lines;
* ``conveyor.fail``: always raises, so the retries and the dead-letter queue can be seen
  (submit it with ``max_attempts`` 1 or 2).

Who calls it: ``conveyor.cli.server`` (``demo_app``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from conveyor.app import Conveyor
from conveyor.handler import JobContext
from conveyor.jobs import JSONObject
from conveyor.retry import RetryPolicy

MAX_SLEEP = 300.0
QUICK_RETRIES = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=2))


class DemoFailure(Exception):
    """What ``conveyor.fail`` raises."""


def demo_app(database_url: str) -> Conveyor:
    app = Conveyor(database_url)

    @app.task(name="conveyor.echo", timeout=timedelta(seconds=10))
    async def echo(ctx: JobContext, message: str = "hello") -> JSONObject:
        await ctx.log(f"echo: {message}")
        return {"message": message}

    @app.task(name="conveyor.sleep", timeout=timedelta(seconds=MAX_SLEEP + 10))
    async def sleep(ctx: JobContext, seconds: float = 5.0) -> JSONObject:
        seconds = max(0.0, min(float(seconds), MAX_SLEEP))
        steps = max(1, int(seconds))
        for step in range(steps):
            await ctx.set_progress({"percent": round(100 * step / steps)})
            await ctx.log(f"step {step + 1} of {steps}")
            await asyncio.sleep(seconds / steps)
        await ctx.set_progress({"percent": 100})
        return {"slept": seconds}

    @app.task(name="conveyor.fail", max_attempts=3, retry_backoff=QUICK_RETRIES)
    async def fail(reason: str = "this task always fails") -> None:
        raise DemoFailure(reason)

    return app
