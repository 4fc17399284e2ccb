"""``GET /``: a small server-rendered page listing queues and recent jobs (a placeholder until
the full dashboard lands). Reads through the same ``JobsService`` as the API.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from conveyor.api.auth import Scope, require
from conveyor.api.jobs import Service
from conveyor.api.service import waiting_depth
from conveyor.backend import JobFilter
from conveyor.jobs import JobStatus

router = APIRouter(tags=["dashboard"])

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conveyor</title>
<meta http-equiv="refresh" content="5">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }}
code {{ font-size: .9em; }}
</style></head>
<body><h1>Conveyor</h1>
<p>API docs: <a href="/docs">/docs</a> · metrics: <a href="/metrics">/metrics</a> ·
health: <a href="/ready">/ready</a></p>
<h2>Queues</h2>
<table><tr><th>queue</th><th>waiting</th><th>running</th><th>completed</th><th>failed</th>
<th>paused</th><th>max depth</th></tr>
{queues}</table>
<h2>Recent jobs</h2>
<table><tr><th>id</th><th>kind</th><th>queue</th><th>status</th><th>attempts</th>
<th>created</th></tr>
{jobs}</table>
</body></html>
"""


@router.get(
    "/",
    response_class=HTMLResponse,
    dependencies=[Depends(require(Scope.JOBS_READ))],
    include_in_schema=False,
)
async def home(svc: Service) -> HTMLResponse:
    """Queues and the 50 most recent jobs."""
    queues = await svc.queues()
    page = await svc.list_jobs(JobFilter(), 50, None)
    queue_rows = (
        "\n".join(
            "<tr>"
            f"<td>{escape(q.queue)}</td><td>{waiting_depth(q)}</td>"
            f"<td>{q.counts.get(JobStatus.RUNNING, 0)}</td>"
            f"<td>{q.counts.get(JobStatus.COMPLETED, 0)}</td>"
            f"<td>{q.counts.get(JobStatus.FAILED, 0)}</td><td>{'yes' if q.paused else 'no'}</td>"
            f"<td>{'' if q.max_depth is None else q.max_depth}</td></tr>"
            for q in queues
        )
        or '<tr><td colspan="7">no queues yet</td></tr>'
    )
    job_rows = (
        "\n".join(
            "<tr>"
            f'<td><a href="/jobs/{escape(j.id)}"><code>{escape(j.id)}</code></a></td>'
            f"<td>{escape(j.kind)}</td><td>{escape(j.queue)}</td><td>{escape(j.status.value)}</td>"
            f"<td>{j.attempts}/{j.max_attempts}</td>"
            f"<td>{escape(j.created_at.strftime('%Y-%m-%d %H:%M:%S'))}</td></tr>"
            for j in page.jobs
        )
        or '<tr><td colspan="6">no jobs yet</td></tr>'
    )
    return HTMLResponse(PAGE.format(queues=queue_rows, jobs=job_rows))
