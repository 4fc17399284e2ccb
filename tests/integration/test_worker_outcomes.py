"""Worker + real backends: what a handler does becomes the job's outcome (success in every
execution mode, retries, dead-lettering, discard, Retry(after), retry_on/no_retry_on,
unknown kinds, progress and logs)."""

from __future__ import annotations

import os
from datetime import timedelta

from tests.integration import worker_tasks as t

from conveyor import Conveyor, JobStatus, NewJob
from conveyor.events import JobFailed
from conveyor.testing import run_worker
from conveyor.worker import WorkerConfig


async def test_async_sync_and_cpu_bound_tasks_complete(app: Conveyor, config: WorkerConfig) -> None:
    async with run_worker(app, config=config) as w:
        a = await t.add.enqueue_async(a=1, b=2)
        s = await t.sync_add.enqueue_async(a=3, b=4)
        c = await t.cpu_pid.enqueue_async(n=7)
        assert (await w.wait_for(a.id)).result == 3
        done = await w.wait_for(s.id)
        assert done.status is JobStatus.COMPLETED
        assert isinstance(done.result, dict) and done.result["sum"] == 7
        cpu = await w.wait_for(c.id, timeout=timedelta(seconds=30))
        assert cpu.status is JobStatus.COMPLETED, cpu.errors
        assert isinstance(cpu.result, dict)
        assert cpu.result["square"] == 49 and cpu.result["pid"] != os.getpid()


async def test_retries_with_backoff_then_succeeds(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=config) as w:
        job = await t.fails_twice.enqueue_async(key=key)
        done = await w.wait_for(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == 3 and done.attempts == 3
    assert [e.type for e in done.errors] == ["builtins.ConnectionError"] * 2
    assert [e.attempt for e in done.errors] == [1, 2]


async def test_dead_letter_after_max_attempts_keeps_every_error(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=config) as w:
        job = await t.always_fails.enqueue_async(key=key)
        done = await w.wait_for(job.id)
        final = await w.wait_for_event(JobFailed, lambda e: e.job_id == job.id and e.final)
    assert done.status is JobStatus.FAILED
    assert done.attempts == 3 and t.CALLS[key] == 3
    assert [e.type for e in done.errors] == ["builtins.ValueError"] * 3
    assert all(e.message == f"broken {key}" for e in done.errors)
    assert all(e.traceback and "raise ValueError" in e.traceback for e in done.errors)
    assert final.retry_in is None


async def test_discard_fails_at_once(app: Conveyor, config: WorkerConfig) -> None:
    async with run_worker(app, config=config) as w:
        job = await t.discards.enqueue_async(reason="bad input")
        done = await w.wait_for(job.id)
    assert done.status is JobStatus.FAILED and done.attempts == 1
    assert done.last_error is not None
    assert (done.last_error.type, done.last_error.message) == ("conveyor.Discard", "bad input")


async def test_retry_after_charged_and_snoozed(
    app: Conveyor, config: WorkerConfig, key: str
) -> None:
    async with run_worker(app, config=config) as w:
        charged = await t.retries_later.enqueue_async(key=key + "c", charge=True)
        snoozed = await t.retries_later.enqueue_async(key=key + "s", charge=False)
        c = await w.wait_for(charged.id)
        s = await w.wait_for(snoozed.id)
    assert c.status is JobStatus.COMPLETED and c.result == 2 and c.attempts == 2
    assert [e.type for e in c.errors] == ["conveyor.Retry"]
    assert s.status is JobStatus.COMPLETED and s.result == 1 and s.attempts == 1
    assert s.errors == ()


async def test_retry_on_and_no_retry_on(app: Conveyor, config: WorkerConfig, key: str) -> None:
    async with run_worker(app, config=config) as w:
        retried = await t.only_connection_errors.enqueue_async(key=key + "r", error="connection")
        not_listed = await t.only_connection_errors.enqueue_async(key=key + "n", error="key")
        excluded = await t.never_key_errors.enqueue_async(key=key + "x")
        r, n, x = [await w.wait_for(j.id) for j in (retried, not_listed, excluded)]
    assert r.status is JobStatus.FAILED and r.attempts == 3
    assert n.status is JobStatus.FAILED and n.attempts == 1
    assert x.status is JobStatus.FAILED and x.attempts == 1
    assert x.errors[0].type == "builtins.KeyError"


async def test_unknown_kind_fails_on_first_attempt(app: Conveyor, config: WorkerConfig) -> None:
    async with run_worker(app, config=config) as w:
        job = await app.enqueue_async(NewJob(kind="nobody.knows", payload={}, max_attempts=9))
        done = await w.wait_for(job.id)
        ok = await t.add.enqueue_async(a=1, b=1)  # the worker carries on
        assert (await w.wait_for(ok.id)).status is JobStatus.COMPLETED
    assert done.status is JobStatus.FAILED and done.attempts == 1
    assert done.errors[0].type == "conveyor.UnknownKind"
    assert "nobody.knows" in done.errors[0].message


async def test_progress_and_logs_from_handlers(app: Conveyor, config: WorkerConfig) -> None:
    async with run_worker(app, config=config) as w:
        a = await t.reports.enqueue_async()
        s = await t.reports_sync.enqueue_async()
        done_a = await w.wait_for(a.id)
        done_s = await w.wait_for(s.id)
        lines_a = [line.line for line in await w.backend.read_log(a.id)]
        lines_s = [line.line for line in await w.backend.read_log(s.id)]
    assert done_a.status is JobStatus.COMPLETED and done_a.result == "reported"
    assert done_a.progress == {"phase": "half", "percent": 50}
    assert lines_a == ["first line", "second line"]
    assert done_s.progress == {"phase": "sync"} and lines_s == ["from a thread"]
