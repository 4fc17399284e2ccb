"""The app and task API on the memory engine: kinds, payload validation at enqueue (nothing
stored when refused), options, the sync wrappers over the async core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from conveyor import Conveyor, InvalidPayload, JobContext, JobStatus, RetryPolicy
from conveyor.backend import ListRequest
from conveyor.errors import ConfigurationError, JobNotFound, PayloadTooLarge


class Tasks:
    """The app and its tasks, as module attributes would hold them."""


def make_app() -> Conveyor:
    app = Conveyor("memory://", max_payload_bytes=1024)

    @app.task(queue="emails", max_attempts=8, timeout=timedelta(seconds=30), priority=3)
    async def send_email(to: str, subject: str = "") -> dict[str, str]:
        return {"to": to}

    @app.task(name="custom.kind", retry_backoff=timedelta(seconds=2))
    def sync_task(n: int, ctx: JobContext) -> int:
        return n

    app.tasks = Tasks()  # type: ignore[attr-defined]
    app.tasks.send, app.tasks.sync = send_email, sync_task  # type: ignore[attr-defined]
    return app


@pytest.fixture
async def app() -> AsyncIterator[Conveyor]:
    application = make_app()
    yield application
    await application.aclose()


async def stored(app: Conveyor) -> int:
    backend = await app.backend()
    return len((await backend.list_jobs(ListRequest(limit=100))).jobs)


async def test_kind_names_and_defaults(app: Conveyor) -> None:
    assert app.registry.kinds() == (
        "custom.kind",
        f"{__name__}.make_app.<locals>.send_email",
        "webhook",  # built in
    )
    [send] = [r for r in app.registry if r.options.queue == "emails"]
    assert send.options.max_attempts == 8 and send.options.timeout == timedelta(seconds=30)
    custom = app.registry.get("custom.kind")
    assert custom is not None and custom.options.retry_policy.base == timedelta(seconds=2)


async def test_enqueue_stores_task_defaults_and_options(app: Conveyor) -> None:
    send = app.tasks.send  # type: ignore[attr-defined]
    job = await send.enqueue_async(to="a@example.com", subject="hi")
    assert (job.queue, job.priority, job.max_attempts) == ("emails", 3, 8)
    assert job.timeout == timedelta(seconds=30) and job.payload == {
        "to": "a@example.com",
        "subject": "hi",
    }
    other = await send.options(queue="bulk", priority=-1, max_attempts=2).enqueue_async(to="b")
    assert (other.queue, other.priority, other.max_attempts) == ("bulk", -1, 2)


@pytest.mark.parametrize(
    "payload",
    [{"subject": "missing to"}, {"to": "x", "unknown": 1}, {"to": object()}, {"to": float("nan")}],
)
async def test_invalid_payload_refused_and_nothing_stored(
    app: Conveyor, payload: dict[str, object]
) -> None:
    send = app.tasks.send  # type: ignore[attr-defined]
    with pytest.raises(InvalidPayload):
        await send.enqueue_async(**payload)  # type: ignore[arg-type]
    with pytest.raises(InvalidPayload):
        await send.enqueue_many_async([{"to": "fine"}, payload])  # type: ignore[list-item]
    assert await stored(app) == 0


async def test_positional_arguments_refused(app: Conveyor) -> None:
    send = app.tasks.send  # type: ignore[attr-defined]
    with pytest.raises(InvalidPayload):
        await send.enqueue_async("a@example.com")  # type: ignore[call-arg]


async def test_payload_size_limit(app: Conveyor) -> None:
    send = app.tasks.send  # type: ignore[attr-defined]
    with pytest.raises(PayloadTooLarge):
        await send.enqueue_async(to="x" * 2000)
    assert await stored(app) == 0


async def test_batch_size_limit_is_per_payload(app: Conveyor) -> None:
    """A batch is checked in one encoder call while it fits the limit as a whole; past
    that, payload by payload: the limit is per job, not per batch."""
    send = app.tasks.send  # type: ignore[attr-defined]
    jobs = await send.enqueue_many_async([{"to": "x" * 600}, {"to": "y" * 600}])
    assert len(jobs) == 2  # 1,200 bytes together, each under 1,024
    with pytest.raises(PayloadTooLarge):
        await send.enqueue_many_async([{"to": "x"}, {"to": "x" * 2000}, {"to": "z"}])
    assert await stored(app) == 2


async def test_enqueue_many_gives_every_job_the_options(app: Conveyor) -> None:
    send = app.tasks.send  # type: ignore[attr-defined]
    call = send.options(queue="bulk", priority=-2, max_attempts=5, delay=timedelta(minutes=1))
    jobs = await call.enqueue_many_async([{"to": str(i)} for i in range(5)])
    assert [j.payload for j in jobs] == [{"to": str(i)} for i in range(5)]
    assert {(j.queue, j.priority, j.max_attempts, j.status) for j in jobs} == {
        ("bulk", -2, 5, JobStatus.SCHEDULED)
    }
    with pytest.raises(InvalidPayload):
        await call.enqueue_many_async([{"to": "a"}, ["not", "an", "object"]])  # type: ignore[list-item]
    assert await stored(app) == 5


async def test_context_parameter_is_not_part_of_the_payload(app: Conveyor) -> None:
    sync_task = app.tasks.sync  # type: ignore[attr-defined]
    job = await sync_task.enqueue_async(n=1)
    assert job.payload == {"n": 1}
    with pytest.raises(InvalidPayload):
        await sync_task.enqueue_async(n=1, ctx=None)


async def test_bad_options_are_configuration_errors(app: Conveyor) -> None:
    send = app.tasks.send  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError):
        await send.options(priority=10_000).enqueue_async(to="x")
    with pytest.raises(ConfigurationError):
        await send.options(idempotency_key="k").enqueue_many_async([{"to": "x"}])


def test_sync_api_runs_on_the_portal() -> None:
    app = make_app()
    send = app.tasks.send  # type: ignore[attr-defined]
    try:
        job = send.enqueue(to="a@example.com", subject="hi")
        jobs = send.enqueue_many([{"to": "b"}, {"to": "c"}])
        assert app.get_job(job.id).status is JobStatus.QUEUED
        assert [j.payload["to"] for j in jobs] == ["b", "c"]
        assert app.cancel(jobs[0].id).status is JobStatus.CANCELLED
        with pytest.raises(JobNotFound):
            app.get_job("0190a000-0000-7000-8000-000000000000")
    finally:
        app.close()
    app.close()  # idempotent


def test_task_is_still_callable() -> None:
    app = Conveyor("memory://")

    @app.task
    def double(n: int) -> int:
        return 2 * n

    assert double(n=4) == 8 and double.__name__ == "double"


def test_decoration_errors() -> None:
    app = Conveyor("memory://")
    with pytest.raises(ConfigurationError):

        @app.task
        def positional(n: int, /) -> None: ...

    with pytest.raises(ConfigurationError):

        @app.task(cron="not a cron")
        def bad_cron() -> None: ...

    with pytest.raises(ConfigurationError):

        @app.task(cron="* * * * *")
        def needs_args(n: int) -> None: ...

    with pytest.raises(ConfigurationError):

        @app.task(cpu_bound=True)
        def cpu_ctx(ctx: JobContext) -> None: ...

    with pytest.raises(ConfigurationError):
        Conveyor("mysql://nope")
    policy = RetryPolicy(base=timedelta(seconds=1))

    @app.task(retry_backoff=policy)
    def ok() -> None: ...

    assert app.registry.get(ok.name) is not None
