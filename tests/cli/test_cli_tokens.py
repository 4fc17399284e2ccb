"""``conveyor token create/list/revoke`` against the store, and using the token over HTTP."""

from __future__ import annotations

import json

from tests.cli.liveapi import Cli, LiveApi


def test_token_lifecycle(cli: Cli, secured_api: LiveApi) -> None:
    db = ["--database-url", secured_api.database_url]
    env = {"CONVEYOR_URL": secured_api.url}
    denied = cli("jobs", "list", env=env)
    assert denied.exit_code == 1 and "401" in denied.output

    created = cli(
        "token", "create", "--scope", "jobs:read", "--scope", "jobs:write", "--name", "ci", *db
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("cvk_") and len(token) > 40
    with_token = {**env, "CONVEYOR_TOKEN": token}
    assert cli("submit", "echo", env=with_token).exit_code == 0
    assert cli("jobs", "list", env=with_token).exit_code == 0
    forbidden = cli("queues", "pause", "default", env=with_token)
    assert forbidden.exit_code == 1 and "403" in forbidden.output

    [record] = json.loads(cli("token", "list", "--json", *db).stdout)
    assert record["name"] == "ci" and record["scopes"] == ["jobs:read", "jobs:write"]
    assert token not in cli("token", "list", *db).stdout  # never shown again
    assert cli("token", "revoke", record["id"], *db).exit_code == 0
    assert cli("token", "revoke", record["id"], *db).exit_code == 1
    assert cli("jobs", "list", env=with_token).exit_code == 1


def test_token_create_needs_a_valid_scope(cli: Cli, secured_api: LiveApi) -> None:
    db = ["--database-url", secured_api.database_url]
    assert cli("token", "create", *db).exit_code == 2
    assert cli("token", "create", "--scope", "root", *db).exit_code == 2
