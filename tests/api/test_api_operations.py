"""The dead-letter queue, queues, workers, SSE, health/ready, metrics and the home page."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import service_unavailable

from conveyor.backend import Backend, MigrationStatus, WorkerInfo, complete_one
from conveyor.jobs import WorkerId

PROMTOOL = Path(__file__).resolve().parents[2] / ".services/prometheus/usr/bin/promtool"


async def test_dlq_list_and_requeue_by_ids_and_filter(
    client: httpx.AsyncClient, dead_letter: object
) -> None:
    for queue in ("a", "a", "b"):
        assert (
            await client.post("/jobs", json={"kind": "echo", "queue": queue})
        ).status_code == 201
    failed = [await dead_letter(q) for q in ("a", "a", "b")]  # type: ignore[operator]
    dlq = (await client.get("/dlq")).json()
    assert {j["id"] for j in dlq["jobs"]} == {c.job.id for c in failed}
    assert all(j["errors"][-1]["type"] == "ValueError" for j in dlq["jobs"])
    assert len((await client.get("/dlq", params={"queue": "a"})).json()["jobs"]) == 2

    by_id = await client.post("/dlq/requeue", json={"ids": [failed[0].job.id, "not-an-id"]})
    assert by_id.status_code == 200 and by_id.json() == {"requeued": [failed[0].job.id], "count": 1}
    by_queue = (await client.post("/dlq/requeue", json={"queue": "b"})).json()
    assert by_queue["requeued"] == [failed[2].job.id]
    rest = (await client.post("/dlq/requeue", json={})).json()
    assert rest["requeued"] == [failed[1].job.id]
    assert (await client.get("/dlq")).json()["jobs"] == []


async def test_queues_pause_resume_and_depth(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post("/jobs", json={"kind": "echo", "queue": "q1"})
    [q1] = [q for q in (await client.get("/queues")).json() if q["queue"] == "q1"]
    assert q1["depth"] == 3 and q1["counts"]["queued"] == 3 and q1["paused"] is False
    assert q1["oldest_queued_age_seconds"] is not None
    paused = (await client.patch("/queues/q1", json={"paused": True, "max_depth": 10})).json()
    assert paused["paused"] is True and paused["max_depth"] == 10
    kept = (await client.patch("/queues/q1", json={"paused": False})).json()
    assert kept["paused"] is False and kept["max_depth"] == 10  # absent field left alone
    cleared = (await client.patch("/queues/q1", json={"max_depth": None})).json()
    assert cleared["max_depth"] is None
    fresh = (await client.get("/queues/never-used")).json()
    assert fresh["depth"] == 0 and fresh["paused"] is False


async def test_workers(client: httpx.AsyncClient, backend: Backend) -> None:
    assert (await client.get("/workers")).json() == []
    await backend.upsert_worker(
        WorkerInfo(
            id=WorkerId("w-1"),
            host="box",
            pid=42,
            queues=("default",),
            kinds=("echo",),
            concurrency=8,
            running=2,
            started_at=await backend.now(),
        )
    )
    [worker] = (await client.get("/workers")).json()
    assert worker["id"] == "w-1" and worker["pid"] == 42 and worker["running"] == 2
    assert worker["last_seen_at"] is not None


def parse_sse(text: str) -> list[tuple[str, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        if "event" in fields:
            events.append((fields["event"], fields["data"]))
    return events


async def test_sse_follows_a_job_to_its_end(
    client: httpx.AsyncClient, backend: Backend, claim_one: object
) -> None:
    import orjson

    job = (await client.post("/jobs", json={"kind": "echo"})).json()

    async def work() -> None:
        claimed = await claim_one()  # type: ignore[operator]
        await backend.append_log(job["id"], ["starting", "step 1"])
        await backend.set_progress(claimed.lease, {"percent": 50})
        await asyncio.sleep(0.1)
        await backend.append_log(job["id"], ["done"])
        await complete_one(backend, claimed.lease, {"ok": True})

    worker = asyncio.create_task(work())
    response = await asyncio.wait_for(client.get(f"/jobs/{job['id']}/events"), 10)
    await worker
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "end"
    logs = [orjson.loads(d)["line"] for e, d in events if e == "log"]
    assert logs == ["starting", "step 1", "done"]
    # Progress arrives as its own event, or inside a status event if it was set before.
    assert {"percent": 50} in [orjson.loads(d).get("progress") for e, d in events if e != "log"]
    statuses = [orjson.loads(d)["status"] for e, d in events if e in ("status", "end")]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "completed"
    assert orjson.loads(events[-1][1])["result"] == {"ok": True}


async def test_sse_resumes_after_last_event_id(client: httpx.AsyncClient, backend: Backend) -> None:
    job = (await client.post("/jobs", json={"kind": "echo"})).json()
    await backend.append_log(job["id"], ["one", "two", "three"])
    await client.delete(f"/jobs/{job['id']}")
    response = await client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": "2"})
    logs = [d for e, d in parse_sse(response.text) if e == "log"]
    assert len(logs) == 1 and '"three"' in logs[0]


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


class StaleSchema:
    """The real backend, except that its schema reports one migration behind."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def migration_status(self) -> MigrationStatus:
        status = await self._inner.migration_status()
        return MigrationStatus(current=status.current - 1, latest=status.latest)


async def test_ready_is_503_when_migrations_are_behind(backend: Backend) -> None:
    from conveyor.api import create_app

    app = create_app(StaleSchema(backend), tokens_required=False)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert "migrations not current" in response.json()["reason"]


def metric_samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: Sequence[tuple[dict[str, str], float]], **labels: str) -> float:
    return sum(v for lab, v in samples if all(lab.get(k) == x for k, x in labels.items()))


async def test_metrics(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post("/jobs", json={"kind": "echo", "queue": "m"})
    await client.get("/jobs/01890a5d-ac96-774b-bcce-b302099a8057")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    assert value(samples["conveyor_jobs_enqueued_total"], queue="m", kind="echo") == 3
    assert value(samples["conveyor_queue_depth"], queue="m", status="queued") == 3
    assert value(samples["conveyor_http_requests_total"], route="/jobs", status="201") == 3
    # The route template, never the raw path (no unbounded label values).
    assert value(samples["conveyor_http_requests_total"], route="/jobs/{job_id}") == 1
    assert not any("01890a5d" in str(lab) for lab, _ in samples["conveyor_http_requests_total"])
    promtool = shutil.which("promtool") or str(PROMTOOL)
    if not Path(promtool).exists():
        service_unavailable("promtool not found (`make test` unpacks it into .services/)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=response.content, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


async def test_home_page_lists_queues_and_jobs(client: httpx.AsyncClient) -> None:
    job = (await client.post("/jobs", json={"kind": "send_email", "queue": "mail"})).json()
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "send_email" in page.text and "<td>mail</td>" in page.text and job["id"] in page.text


@pytest.mark.parametrize("path", ["/openapi.json"])
async def test_openapi_documents_problems(client: httpx.AsyncClient, path: str) -> None:
    schema = (await client.get(path)).json()
    post = schema["paths"]["/jobs"]["post"]
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert "Problem" in schema["components"]["schemas"]
