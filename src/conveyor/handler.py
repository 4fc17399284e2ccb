"""Handler signals. A handler raises these to tell the worker what to do with the attempt.

They deliberately do not derive from ``ConveyorError``: an ``except ConveyorError`` around
infrastructure code can never swallow a handler's instruction. (The Handler protocol, the
JobContext and the registry are added beside these by the worker work.)
"""

from __future__ import annotations

from datetime import timedelta


class Retry(Exception):
    """Schedule the next attempt after ``after`` (default: the task's backoff).

    ``charge=True`` (default): the attempt counts against ``max_attempts``, so a handler that
    always says Retry still ends in the dead-letter queue. ``charge=False``: the attempt does
    not count (a snooze: "not yet, try later"), and no error is recorded.
    """

    def __init__(
        self, after: timedelta | None = None, reason: str = "", *, charge: bool = True
    ) -> None:
        super().__init__(reason or "retry requested")
        self.after = after
        self.reason = reason
        self.charge = charge


class Discard(Exception):
    """Give up at once: the job goes to ``failed`` (the dead-letter queue) with ``reason``,
    whatever attempts are left. For errors no retry can fix (bad input, 4xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
