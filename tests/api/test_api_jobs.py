"""POST/GET/DELETE /jobs, batch, requeue, idempotency, unknown kinds, limits: on every engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conveyor.api.schemas import JobOut
from conveyor.backend import Backend


async def enqueue(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    body.setdefault("kind", "echo")
    return await client.post("/jobs", json=body)


async def test_enqueue_returns_the_stored_job(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await enqueue(
        client,
        payload={"to": "a@example.com"},
        queue="emails",
        priority=5,
        max_attempts=3,
        timeout_seconds=12.5,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    JobOut.model_validate(body)  # the documented shape
    assert response.headers["location"] == f"/jobs/{body['id']}"
    assert body["status"] == "queued"
    assert body["payload"] == {"to": "a@example.com"}
    assert (body["queue"], body["priority"], body["max_attempts"]) == ("emails", 5, 3)
    assert body["timeout_seconds"] == 12.5
    stored = await backend.get(body["id"])
    assert stored is not None and stored.payload == {"to": "a@example.com"}

    got = await client.get(f"/jobs/{body['id']}")
    assert got.status_code == 200 and got.json() == body


async def test_delayed_and_scheduled_jobs(client: httpx.AsyncClient) -> None:
    delayed = (await enqueue(client, delay_seconds=3600)).json()
    assert delayed["status"] == "scheduled"
    at = datetime.now(UTC) + timedelta(hours=2)
    scheduled = (await enqueue(client, run_at=at.isoformat())).json()
    assert scheduled["status"] == "scheduled"
    assert abs(datetime.fromisoformat(scheduled["run_at"]) - at) < timedelta(seconds=1)
    both = await enqueue(client, run_at=at.isoformat(), delay_seconds=1)
    assert both.status_code == 422 and "not both" in both.json()["detail"]


async def test_idempotency_key_header_and_field(client: httpx.AsyncClient) -> None:
    first = await client.post("/jobs", json={"kind": "echo"}, headers={"Idempotency-Key": "k-1"})
    again = await client.post("/jobs", json={"kind": "echo"}, headers={"Idempotency-Key": "k-1"})
    by_field = await enqueue(client, idempotency_key="k-1")
    assert first.status_code == 201 and again.status_code == 200 and by_field.status_code == 200
    assert first.json()["id"] == again.json()["id"] == by_field.json()["id"]
    assert first.json()["idempotency_key"] == "k-1"
    clash = await client.post(
        "/jobs", json={"kind": "echo", "idempotency_key": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert clash.status_code == 422


async def test_unknown_kind_names_the_known_ones(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await enqueue(client, kind="ecoh")
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("unknown-kind")
    assert problem["known_kinds"] == ["echo", "send_email"]
    assert "ecoh" in problem["detail"]
    allowed = await enqueue(client, kind="ecoh", allow_unknown_kind=True)
    assert allowed.status_code == 201
    assert (
        len((await backend.list_jobs(__import__("conveyor.backend").backend.ListRequest())).jobs)
        == 1
    )


async def test_kinds_published_by_workers_are_known(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    from conveyor.backend import WorkerInfo
    from conveyor.jobs import WorkerId

    await backend.upsert_worker(
        WorkerInfo(
            id=WorkerId("w1"),
            host="h",
            pid=1,
            queues=("default",),
            kinds=("resize",),
            concurrency=4,
            running=0,
            started_at=await backend.now(),
        )
    )
    assert (await enqueue(client, kind="resize")).status_code == 201


async def test_batch_is_one_transaction(client: httpx.AsyncClient, backend: Backend) -> None:
    jobs = [{"kind": "echo", "payload": {"n": i}} for i in range(20)]
    response = await client.post("/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 201, response.text
    body = response.json()
    assert [j["payload"]["n"] for j in body] == list(range(20))
    await client.patch("/queues/small", json={"max_depth": 5})
    too_many = [{"kind": "echo", "queue": "small"} for _ in range(6)]
    refused = await client.post("/jobs/batch", json={"jobs": too_many})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    listing = (await client.get("/jobs", params={"queue": "small"})).json()
    assert listing["jobs"] == []  # nothing of the refused batch was stored
    bad_kind = [{"kind": "echo"}, {"kind": "nope"}]
    assert (await client.post("/jobs/batch", json={"jobs": bad_kind})).status_code == 422
    assert (await client.post("/jobs/batch", json={"jobs": []})).status_code == 422


async def test_queue_full_is_429_with_retry_after(client: httpx.AsyncClient) -> None:
    await client.patch("/queues/tiny", json={"max_depth": 2})
    for _ in range(2):
        assert (await enqueue(client, queue="tiny")).status_code == 201
    full = await enqueue(client, queue="tiny")
    assert full.status_code == 429
    assert full.headers["content-type"] == "application/problem+json"
    assert full.json()["queue"] == "tiny" and full.json()["max_depth"] == 2
    assert int(full.headers["retry-after"]) >= 1


async def test_list_filters_and_cursor(client: httpx.AsyncClient) -> None:
    ids = [(await enqueue(client, payload={"n": i})).json()["id"] for i in range(7)]
    await enqueue(client, kind="send_email", queue="emails")
    page = (await client.get("/jobs", params={"kind": "echo", "limit": 3})).json()
    seen = [j["id"] for j in page["jobs"]]
    while page["next_cursor"]:
        page = (
            await client.get(
                "/jobs", params={"kind": "echo", "limit": 3, "cursor": page["next_cursor"]}
            )
        ).json()
        seen += [j["id"] for j in page["jobs"]]
    assert seen == list(reversed(ids))  # newest first, each once
    emails = (await client.get("/jobs", params={"queue": "emails"})).json()["jobs"]
    assert [j["kind"] for j in emails] == ["send_email"]
    queued = (await client.get("/jobs", params=[("status", "queued"), ("status", "failed")])).json()
    assert len(queued["jobs"]) == 8
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await client.get("/jobs", params={"created_after": future})).json()["jobs"] == []
    before = (await client.get("/jobs", params={"created_before": future})).json()["jobs"]
    assert len(before) == 8
    bad = await client.get("/jobs", params={"status": "sleeping"})
    assert bad.status_code == 422


async def test_cancel_waiting_and_running(
    client: httpx.AsyncClient, backend: Backend, claim_one: object
) -> None:
    waiting = (await enqueue(client)).json()
    cancelled = await client.delete(f"/jobs/{waiting['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.delete(f"/jobs/{waiting['id']}")
    assert again.status_code == 409 and again.json()["job_status"] == "cancelled"

    running = (await enqueue(client)).json()
    await claim_one()  # type: ignore[operator]
    told = await client.delete(f"/jobs/{running['id']}")
    assert told.status_code == 200
    assert told.json()["status"] == "running" and told.json()["cancel_requested"] is True


async def test_requeue_failed_and_cancelled(client: httpx.AsyncClient, dead_letter: object) -> None:
    job = (await enqueue(client)).json()
    assert (await client.post(f"/jobs/{job['id']}/requeue")).status_code == 409
    await dead_letter()  # type: ignore[operator]
    failed = (await client.get(f"/jobs/{job['id']}")).json()
    assert failed["status"] == "failed"
    assert failed["errors"][0]["message"] == "boom" and failed["errors"][0]["attempt"] == 1
    requeued = await client.post(f"/jobs/{job['id']}/requeue")
    assert requeued.status_code == 200
    assert requeued.json()["status"] == "queued" and requeued.json()["attempts"] == 0
    assert len(requeued.json()["errors"]) == 1  # history kept
    other = (await enqueue(client)).json()
    await client.delete(f"/jobs/{other['id']}")
    assert (await client.post(f"/jobs/{other['id']}/requeue")).json()["status"] == "queued"


@pytest.mark.parametrize("bad", ["nope", "00000000-0000-0000-0000", "1' OR '1'='1", "%00"])
async def test_bad_ids_are_404(client: httpx.AsyncClient, bad: str) -> None:
    for method, path in (
        ("GET", f"/jobs/{bad}"),
        ("DELETE", f"/jobs/{bad}"),
        ("POST", f"/jobs/{bad}/requeue"),
        ("GET", f"/jobs/{bad}/events"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_but_valid_id_is_404(client: httpx.AsyncClient) -> None:
    missing = "01890a5d-ac96-774b-bcce-b302099a8057"
    response = await client.get(f"/jobs/{missing}")
    assert response.status_code == 404 and response.json()["job_id"] == missing
