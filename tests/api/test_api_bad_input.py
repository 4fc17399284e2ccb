"""Bad input gets a 4xx problem with a useful message, and nothing stored is lost or changed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from conveyor.backend import Backend, ListRequest
from conveyor.settings import Settings

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert str(body["type"]).startswith("urn:conveyor:problem:")
    return body


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.post("/jobs", json={"kind": "echo", "payload": {"keep": [1, 2]}})
    assert response.status_code == 201
    job: dict[str, object] = response.json()
    return job


async def assert_untouched(
    client: httpx.AsyncClient, backend: Backend, job: dict[str, object]
) -> None:
    assert (await client.get(f"/jobs/{job['id']}")).json() == job
    assert len((await backend.list_jobs(ListRequest())).jobs) == 1


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"kind": "echo",}', b"[1, 2", b"\xff\xfe", b'{"kind": "echo"} trailing'],
)
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, backend: Backend, stored: dict[str, object], raw: bytes
) -> None:
    response = await client.post("/jobs", content=raw, headers={"content-type": "application/json"})
    body = assert_problem(response, 400)
    assert "JSON" in str(body["detail"])
    await assert_untouched(client, backend, stored)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "echo", "payload": [1, 2]}, "payload"),
        ({"kind": "echo", "payload": "text"}, "payload"),
        ({"kind": 12}, "kind"),
        ({"kind": ""}, "kind"),
        ({"payload": {}}, "kind"),
        ({"kind": "echo", "priority": "high"}, "priority"),
        ({"kind": "echo", "priority": 10_000}, "priority"),
        ({"kind": "echo", "max_attempts": 0}, "max_attempts"),
        ({"kind": "echo", "run_at": "tomorrow"}, "run_at"),
        ({"kind": "echo", "run_at": "2030-01-01T00:00:00"}, "run_at"),  # naive
        ({"kind": "echo", "delay_seconds": -1}, "delay_seconds"),
        ({"kind": "echo", "queue": "has space"}, "queue"),
        ({"kind": "echo", "colour": "blue"}, "colour"),  # unknown field
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    client: httpx.AsyncClient,
    backend: Backend,
    stored: dict[str, object],
    body: dict[str, object],
    field: str,
) -> None:
    problem = assert_problem(await client.post("/jobs", json=body), 422)
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert any(e["field"] == field for e in errors), errors
    await assert_untouched(client, backend, stored)


async def test_json_array_body_is_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/jobs", json=[{"kind": "echo"}]), 422)


async def test_body_over_the_limit_by_content_length(make_client: object, backend: Backend) -> None:
    client: httpx.AsyncClient = await make_client(  # type: ignore[operator]
        settings=Settings(max_body_bytes=4096)
    )
    big = {"kind": "echo", "payload": {"blob": "x" * 10_000}}
    problem = assert_problem(await client.post("/jobs", json=big), 413)
    assert problem["limit"] == 4096
    assert (await backend.list_jobs(ListRequest())).jobs == ()


async def test_streamed_body_is_cut_before_buffering(make_client: object, backend: Backend) -> None:
    """No Content-Length (chunked): the limit applies while the body streams in; the rest of
    the stream is never read."""
    client: httpx.AsyncClient = await make_client(  # type: ignore[operator]
        settings=Settings(max_body_bytes=4096)
    )
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"kind": "echo", "payload": {"blob": "'
        for _ in range(1000):
            sent += 1024
            yield b"x" * 1024
        yield b'"}}'

    response = await client.post(
        "/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)
    assert sent < 1000 * 1024  # stopped early
    assert (await backend.list_jobs(ListRequest())).jobs == ()


async def test_payload_over_its_limit_is_413(make_client: object, backend: Backend) -> None:
    client: httpx.AsyncClient = await make_client(  # type: ignore[operator]
        settings=Settings(max_payload_bytes=1024)
    )
    response = await client.post("/jobs", json={"kind": "echo", "payload": {"b": "y" * 2000}})
    problem = assert_problem(response, 413)
    assert problem["type"] == "urn:conveyor:problem:payload-too-large"
    assert (await backend.list_jobs(ListRequest())).jobs == ()


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/no/such/route"), 404)
    assert_problem(await client.put("/jobs"), 405)
    assert_problem(await client.delete("/queues"), 405)


async def test_bad_query_and_cursor(client: httpx.AsyncClient, stored: dict[str, object]) -> None:
    assert_problem(await client.get("/jobs", params={"limit": 0}), 422)
    assert_problem(await client.get("/jobs", params={"limit": "many"}), 422)
    assert_problem(await client.get("/jobs", params={"created_after": "yesterday"}), 422)
    response = await client.get("/jobs", params={"cursor": "not-a-cursor"})
    assert response.status_code in (200, 422), response.text


async def test_patch_queue_rejects_bad_values(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/queues/q", json={"max_depth": 0}), 422)
    assert_problem(await client.patch("/queues/q", json={"paused": "maybe"}), 422)
    assert_problem(await client.patch("/queues/q", json={"speed": 1}), 422)
    assert_problem(await client.patch("/queues/bad%20name", json={"paused": True}), 422)


async def test_wrong_method_lists_every_allowed_method(client: httpx.AsyncClient) -> None:
    response = await client.request("OPTIONS", "/jobs")
    assert_problem(response, 405)
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}


async def test_strict_types_and_single_valued_query(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/queues/q", json={"paused": 0}), 422)
    assert_problem(await client.post("/jobs", json={"kind": "echo", "priority": "1"}), 422)
    assert_problem(await client.post("/jobs", json={"kind": "echo", "run_at": 1.8e9}), 422)
    assert_problem(await client.get("/jobs", params={"created_before": "0.5"}), 422)
    repeated = await client.get("/jobs", params=[("limit", "1"), ("limit", "2")])
    assert "more than once" in str(assert_problem(repeated, 422)["detail"])
