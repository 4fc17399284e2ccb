"""Bearer tokens: missing, wrong, revoked, insufficient scope; open routes stay open."""

from __future__ import annotations

import httpx

from conveyor.backend import Backend


async def test_token_required_when_configured(make_client: object, make_token: object) -> None:
    await make_token("jobs:read")  # type: ignore[operator]
    anonymous: httpx.AsyncClient = await make_client(tokens_required=None)  # type: ignore[operator]
    response = await anonymous.get("/jobs")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    for path in ("/health", "/ready", "/metrics"):
        assert (await anonymous.get(path)).status_code == 200, path


async def test_no_tokens_configured_means_open(make_client: object) -> None:
    client: httpx.AsyncClient = await make_client(tokens_required=None)  # type: ignore[operator]
    assert (await client.get("/jobs")).status_code == 200


async def test_wrong_and_malformed_tokens_are_401(make_client: object) -> None:
    for header in ("Bearer cvk_wrong", "Basic dXNlcjpwdw==", "Bearer ", "cvk_bare"):
        client: httpx.AsyncClient = await make_client(tokens_required=True)  # type: ignore[operator]
        response = await client.get("/jobs", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["type"].endswith("unauthenticated")


async def test_scopes(make_client: object, make_token: object) -> None:
    reader = await make_token("jobs:read")  # type: ignore[operator]
    writer = await make_token("jobs:write")  # type: ignore[operator]
    admin = await make_token("admin")  # type: ignore[operator]
    as_reader: httpx.AsyncClient = await make_client(tokens_required=True, token=reader)  # type: ignore[operator]
    as_writer: httpx.AsyncClient = await make_client(tokens_required=True, token=writer)  # type: ignore[operator]
    as_admin: httpx.AsyncClient = await make_client(tokens_required=True, token=admin)  # type: ignore[operator]

    assert (await as_reader.get("/jobs")).status_code == 200
    denied = await as_reader.post("/jobs", json={"kind": "echo"})
    assert denied.status_code == 403
    assert denied.json()["required_scope"] == "jobs:write"
    created = await as_writer.post("/jobs", json={"kind": "echo"})
    assert created.status_code == 201
    assert (await as_writer.get(f"/jobs/{created.json()['id']}")).status_code == 200
    assert (await as_writer.patch("/queues/default", json={"paused": True})).status_code == 403
    assert (await as_admin.patch("/queues/default", json={"paused": True})).status_code == 200
    assert (await as_admin.post("/jobs", json={"kind": "echo"})).status_code == 201


async def test_revoked_token_stops_working(
    make_client: object, make_token: object, backend: Backend
) -> None:
    secret = await make_token("admin")  # type: ignore[operator]
    client: httpx.AsyncClient = await make_client(tokens_required=True, token=secret)  # type: ignore[operator]
    assert (await client.get("/jobs")).status_code == 200
    [record] = await backend.list_tokens()
    assert record.secret_hash != secret and secret not in record.secret_hash
    assert await backend.revoke_token(record.id)
    assert (await client.get("/jobs")).status_code == 401
