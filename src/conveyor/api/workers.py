"""``/workers``: the live workers, from the backend's worker registry.

Who calls it: operators (curl, ``conveyor workers``), the dashboard.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from conveyor.api.auth import Scope, require
from conveyor.api.jobs import ERRORS, Service, json_response, single_valued
from conveyor.api.schemas import WorkerOut
from conveyor.backend import WorkerInfo
from conveyor.jobs import JSONObject

router = APIRouter(tags=["workers"])


def worker_json(info: WorkerInfo) -> JSONObject:
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "queues": list(info.queues),
        "kinds": list(info.kinds),
        "concurrency": info.concurrency,
        "running": info.running,
        "started_at": info.started_at.isoformat(),
        "last_seen_at": None if info.last_seen_at is None else info.last_seen_at.isoformat(),
    }


@router.get(
    "/workers",
    response_model=list[WorkerOut],
    responses=ERRORS,
    dependencies=[
        Depends(require(Scope.JOBS_READ)),
        Depends(single_valued("seen_within_seconds")),
    ],
)
async def list_workers(
    svc: Service,
    seen_within_seconds: Annotated[float, Query(gt=0, le=7 * 24 * 3600)] = 60.0,
) -> Response:
    """Workers that sent a heartbeat within ``seen_within_seconds`` (default 60)."""
    workers = await svc.workers(timedelta(seconds=seen_within_seconds))
    return json_response([worker_json(w) for w in workers])
