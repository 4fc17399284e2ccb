"""``JobFilter`` as an SQL conjunction for ``list_jobs.sql`` and ``requeue.sql``.

Called by the engine's read and lifecycle modules. Only fixed fragments are written into the
statement; every value is a bound parameter (sets travel as one JSON array, read with
``json_each``, so the statement text, and thus SQLite's statement cache, depends only on
which filters are set).
"""

from __future__ import annotations

import orjson

from conveyor.backend import JobFilter
from conveyor.clock import to_micros

Params = dict[str, object]


def where(job_filter: JobFilter, *, before_id: str | None = None) -> tuple[str, Params]:
    """``(conjunction, params)``; the conjunction is ``1`` when nothing is filtered."""
    clauses: list[str] = []
    params: Params = {}

    def any_of(column: str, name: str, values: frozenset[str]) -> None:
        if values:
            clauses.append(f"{column} IN (SELECT value FROM json_each(:{name}))")
            params[name] = orjson.dumps(sorted(values)).decode()

    any_of("status", "f_statuses", frozenset(s.value for s in job_filter.statuses))
    any_of("queue", "f_queues", job_filter.queues)
    any_of("kind", "f_kinds", job_filter.kinds)
    any_of("id", "f_ids", frozenset(job_filter.ids))
    if job_filter.created_after is not None:
        clauses.append("created_at >= :f_created_after")
        params["f_created_after"] = to_micros(job_filter.created_after)
    if job_filter.created_before is not None:
        clauses.append("created_at < :f_created_before")
        params["f_created_before"] = to_micros(job_filter.created_before)
    if before_id is not None:
        clauses.append("id < :f_before_id")
        params["f_before_id"] = before_id
    return (" AND ".join(clauses) or "1"), params
