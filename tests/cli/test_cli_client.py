"""The operator CLI against a live API: output for people, --json for scripts, exit codes."""

from __future__ import annotations

import json

from tests.cli.liveapi import Cli, LiveApi

from conveyor.backend import ClaimRequest, FailRequest, complete_one
from conveyor.jobs import AttemptError, WorkerId


def submit(cli: Cli, api: LiveApi, *args: str) -> dict[str, object]:
    result = cli("submit", *args, "--json", env={"CONVEYOR_URL": api.url})
    assert result.exit_code == 0, result.output
    job: dict[str, object] = json.loads(result.stdout)
    return job


def test_submit_for_people_and_scripts(cli: Cli, live_api: LiveApi) -> None:
    result = cli("submit", "echo", "--payload", '{"n": 1}', "--url", live_api.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("enqueued job ")
    job = submit(
        cli,
        live_api,
        "send_email",
        "-p",
        '{"to": "a@b.c"}',
        "--queue",
        "mail",
        "--priority",
        "3",
        "--delay",
        "60",
        "--max-attempts",
        "2",
    )
    assert (job["queue"], job["priority"], job["max_attempts"]) == ("mail", 3, 2)
    assert job["status"] == "scheduled" and job["payload"] == {"to": "a@b.c"}


def test_submit_idempotency_key(cli: Cli, live_api: LiveApi) -> None:
    first = submit(cli, live_api, "echo", "--idempotency-key", "once")
    again = cli("submit", "echo", "--idempotency-key", "once", "--url", live_api.url)
    assert again.exit_code == 0 and "already enqueued" in again.stdout
    assert str(first["id"]) in again.stdout


def test_errors_are_one_line_with_trustworthy_codes(cli: Cli, live_api: LiveApi) -> None:
    unknown = cli("submit", "ecoh", "--url", live_api.url)
    assert unknown.exit_code == 1
    lines = unknown.output.strip().splitlines()
    assert (
        len(lines) == 1
        and "422" in lines[0]
        and "echo" in lines[0]
        and "Traceback" not in unknown.output
    )

    allowed = cli("submit", "ecoh", "--allow-unknown-kind", "--url", live_api.url)
    assert allowed.exit_code == 0

    bad_payload = cli("submit", "echo", "--payload", "[1]", "--url", live_api.url)
    assert bad_payload.exit_code == 2 and "JSON object" in bad_payload.output
    not_json = cli("submit", "echo", "--payload", "{nope", "--url", live_api.url)
    assert not_json.exit_code == 2

    missing = cli("jobs", "show", "01890a5d-ac96-774b-bcce-b302099a8057", "--url", live_api.url)
    assert missing.exit_code == 1 and "404" in missing.output

    bad_flag = cli("jobs", "list", "--limit", "zero", "--url", live_api.url)
    assert bad_flag.exit_code == 2


def test_unreachable_server_is_69(cli: Cli) -> None:
    from tests.cli.liveapi import free_port

    result = cli("jobs", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 69
    assert len(result.output.strip().splitlines()) == 1
    assert "cannot reach" in result.output and "Traceback" not in result.output


def test_jobs_list_show_cancel_requeue(cli: Cli, live_api: LiveApi) -> None:
    env = {"CONVEYOR_URL": live_api.url}
    ids = [str(submit(cli, live_api, "echo", "-p", json.dumps({"n": i}))["id"]) for i in range(3)]
    table = cli("jobs", "list", env=env)
    assert table.exit_code == 0 and all(i in table.stdout for i in ids)
    listing = json.loads(cli("jobs", "list", "--json", "--limit", "2", env=env).stdout)
    assert [j["id"] for j in listing["jobs"]] == ids[:0:-1] and listing["next_cursor"]
    rest = json.loads(
        cli("jobs", "list", "--json", "--cursor", listing["next_cursor"], env=env).stdout
    )
    assert [j["id"] for j in rest["jobs"]] == ids[:1]

    shown = cli("jobs", "show", ids[0], env=env)
    assert (
        shown.exit_code == 0
        and ids[0] in shown.stdout
        and '{"n": 0}' in shown.stdout.replace('{"n":0}', '{"n": 0}')
    )
    cancelled = cli("jobs", "cancel", ids[0], env=env)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout
    twice = cli("jobs", "cancel", ids[0], env=env)
    assert twice.exit_code == 1 and "409" in twice.output
    requeued = cli("jobs", "requeue", ids[0], "--json", env=env)
    assert requeued.exit_code == 0 and json.loads(requeued.stdout)["status"] == "queued"
    by_status = json.loads(cli("jobs", "list", "--json", "--status", "queued", env=env).stdout)
    assert len(by_status["jobs"]) == 3


def test_watch_follows_to_the_end(cli: Cli, live_api: LiveApi) -> None:
    env = {"CONVEYOR_URL": live_api.url}
    job_id = str(submit(cli, live_api, "echo")["id"])

    async def finish(backend):  # type: ignore[no-untyped-def]
        [claimed] = await backend.claim(ClaimRequest(WorkerId("w"), ["default"], 1))
        await backend.append_log(claimed.job.id, ["hello from the job"])
        await complete_one(backend, claimed.lease, {"ok": True})

    live_api.run(finish)
    watched = cli("jobs", "watch", job_id, env=env)
    assert watched.exit_code == 0, watched.output
    assert "hello from the job" in watched.stdout and "completed" in watched.stdout
    events = cli("jobs", "watch", job_id, "--json", env=env)
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    assert lines[-1]["event"] == "end" and lines[-1]["data"]["status"] == "completed"

    other = str(submit(cli, live_api, "echo")["id"])
    cli("jobs", "cancel", other, env=env)
    assert cli("jobs", "watch", other, env=env).exit_code == 1  # ended, but not completed


def test_dlq_list_and_bulk_requeue(cli: Cli, live_api: LiveApi) -> None:
    env = {"CONVEYOR_URL": live_api.url}
    for _ in range(5):
        submit(cli, live_api, "echo", "--queue", "dead")

    async def fail_all(backend):  # type: ignore[no-untyped-def]
        claimed = await backend.claim(ClaimRequest(WorkerId("w"), ["dead"], 10))
        now = await backend.now()
        for c in claimed:
            error = AttemptError(c.lease.attempt, now, "RuntimeError", "kaput")
            await backend.fail(FailRequest(c.lease, error, retry_after=None))
        return [c.job.id for c in claimed]

    failed = live_api.run(fail_all)
    listing = cli("dlq", "list", env=env)
    assert listing.exit_code == 0 and "RuntimeError: kaput" in listing.stdout
    one = cli("dlq", "requeue", failed[0], "--json", env=env)  # type: ignore[index]
    assert json.loads(one.stdout)["count"] == 1
    usage = cli("dlq", "requeue", env=env)
    assert usage.exit_code == 2
    rest = cli("dlq", "requeue", "--queue", "dead", env=env)
    assert rest.exit_code == 0 and "requeued 4 job(s)" in rest.stdout
    assert json.loads(cli("dlq", "list", "--json", env=env).stdout)["jobs"] == []


def test_queues_and_workers(cli: Cli, live_api: LiveApi) -> None:
    env = {"CONVEYOR_URL": live_api.url}
    submit(cli, live_api, "echo", "--queue", "q")
    listing = cli("queues", env=env)
    assert listing.exit_code == 0 and "q" in listing.stdout
    paused = json.loads(cli("queues", "pause", "q", "--json", env=env).stdout)
    assert paused["paused"] is True
    assert json.loads(cli("queues", "resume", "q", "--json", env=env).stdout)["paused"] is False
    capped = json.loads(cli("queues", "max-depth", "q", "1", "--json", env=env).stdout)
    assert capped["max_depth"] == 1
    full = cli("submit", "echo", "--queue", "q", env=env)
    assert full.exit_code == 1 and "429" in full.output and "retry after" in full.output
    assert (
        json.loads(cli("queues", "max-depth", "q", "none", "--json", env=env).stdout)["max_depth"]
        is None
    )
    assert cli("queues", "max-depth", "q", "-3", env=env).exit_code == 2
    workers = cli("workers", "--json", env=env)
    assert workers.exit_code == 0 and json.loads(workers.stdout) == []
