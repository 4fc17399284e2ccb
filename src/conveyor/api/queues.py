"""``/queues``: depth by status, oldest waiting age, last-minute throughput; pause, resume
and set a maximum depth.

Who calls it: operators (curl, ``conveyor queues``), the dashboard.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from conveyor.api.auth import Scope, require
from conveyor.api.jobs import ERRORS, Service, json_response
from conveyor.api.schemas import NAME_PATTERN, QueueOut, QueuePatch
from conveyor.api.service import waiting_depth
from conveyor.backend import QueueStats
from conveyor.jobs import JSONObject

router = APIRouter(tags=["queues"])


def queue_json(stats: QueueStats, now_ts: float) -> JSONObject:
    oldest = stats.oldest_queued_at
    return {
        "queue": stats.queue,
        "counts": {status.value: count for status, count in stats.counts.items()},
        "depth": waiting_depth(stats),
        "oldest_queued_age_seconds": None
        if oldest is None
        else max(0.0, round(now_ts - oldest.timestamp(), 3)),
        "completed_last_minute": stats.completed_last_minute,
        "failed_last_minute": stats.failed_last_minute,
        "paused": stats.paused,
        "max_depth": stats.max_depth,
    }


@router.get(
    "/queues",
    response_model=list[QueueOut],
    responses=ERRORS,
    dependencies=[Depends(require(Scope.JOBS_READ))],
)
async def list_queues(svc: Service) -> Response:
    """Every queue that has jobs or settings."""
    stats = await svc.queues()
    now_ts = (await svc.now()).timestamp()
    return json_response([queue_json(s, now_ts) for s in stats])


QueueName = Annotated[str, Path(min_length=1, max_length=200, pattern=NAME_PATTERN)]


@router.get(
    "/queues/{name}",
    response_model=QueueOut,
    responses=ERRORS,
    dependencies=[Depends(require(Scope.JOBS_READ))],
)
async def get_queue(name: QueueName, svc: Service) -> Response:
    """One queue (a queue never used reads as empty, with default settings)."""
    stats = await svc.queue(name)
    return json_response(queue_json(stats, (await svc.now()).timestamp()))


@router.patch(
    "/queues/{name}",
    response_model=QueueOut,
    responses=ERRORS,
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def patch_queue(name: QueueName, body: QueuePatch, svc: Service) -> Response:
    """Pause or resume (``paused``) and set or clear (``null``) ``max_depth``. Fields not
    given are left as they are."""
    stats = await svc.configure_queue(
        name,
        paused=body.paused,
        max_depth=body.max_depth,
        set_max_depth="max_depth" in body.model_fields_set,
    )
    return json_response(queue_json(stats, (await svc.now()).timestamp()))
