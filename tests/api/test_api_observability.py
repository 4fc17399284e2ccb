"""Metrics and logs fed by the EventBus; the standalone metrics server for workers."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.services import free_port

from conveyor.events import (
    ActiveJobs,
    EventBus,
    JobClaimed,
    JobCompleted,
    JobEnqueued,
    JobFailed,
    WorkerStopped,
)
from conveyor.jobs import JobId, WorkerId
from conveyor.observability import (
    configure_logging,
    install_metrics,
    log_job_events,
    start_metrics_server,
)

JOB = JobId("01890a5d-ac96-774b-bcce-b302099a8057")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_events_become_metrics() -> None:
    bus = EventBus()
    metrics = install_metrics(bus)
    bus.emit(JobEnqueued(JOB, "q", "k", 0))
    bus.emit(JobEnqueued(JOB, "q", "k", 0, created=False))  # idempotent hit: not counted
    bus.emit(JobClaimed(JOB, "q", "k", 1, worker="w", pickup=timedelta(milliseconds=20)))
    bus.emit(JobFailed(JOB, "q", "k", 1, duration=timedelta(seconds=1), error_type="E"))
    bus.emit(JobCompleted(JOB, "q", "k", 2, duration=timedelta(milliseconds=30)))
    bus.emit(JobFailed(JOB, "q", "k", 3, error_type="E", final=True))
    bus.emit(ActiveJobs(WorkerId("w"), 4))
    got = samples(metrics.render().decode())
    assert got[("conveyor_jobs_enqueued_total", (("kind", "k"), ("queue", "q")))] == 1
    processed = "conveyor_jobs_processed_total"
    for outcome, count in (("completed", 1), ("retried", 1), ("failed", 1)):
        assert got[(processed, (("kind", "k"), ("outcome", outcome), ("queue", "q")))] == count
    failures = ("conveyor_job_failures_total", (("error_type", "E"), ("kind", "k"), ("queue", "q")))
    assert got[failures] == 2
    assert got[("conveyor_job_pickup_seconds_count", (("queue", "q"),))] == 1
    assert got[("conveyor_job_duration_seconds_count", (("kind", "k"), ("queue", "q")))] == 3
    assert got[("conveyor_worker_active_jobs", (("worker", "w"),))] == 4
    bus.emit(WorkerStopped(WorkerId("w"), released=0))
    assert (
        samples(metrics.render().decode())[("conveyor_worker_active_jobs", (("worker", "w"),))] == 0
    )


def test_standalone_metrics_server() -> None:
    bus = EventBus()
    metrics = install_metrics(bus)
    bus.emit(JobEnqueued(JOB, "q", "k", 0))
    port = free_port()
    stop = start_metrics_server(port, metrics)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert 'conveyor_jobs_enqueued_total{kind="k",queue="q"} 1.0' in response.text
    finally:
        stop()


def test_one_json_log_line_per_state_change() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    try:
        bus = EventBus()
        unsubscribe = log_job_events(bus)
        bus.emit(JobClaimed(JOB, "q", "k", 1, worker="w", pickup=timedelta(milliseconds=5)))
        bus.emit(ActiveJobs(WorkerId("w"), 1))  # a gauge, not a state change: no line
        bus.emit(JobFailed(JOB, "q", "k", 1, error_type="E", message="boom", final=True))
        unsubscribe()
        bus.emit(JobCompleted(JOB, "q", "k", 1))
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logging.getLogger().handlers = []
    assert [line["event"] for line in lines] == ["job.claimed", "job.failed"]
    claimed, failed = lines
    assert claimed["job_id"] == JOB and claimed["queue"] == "q" and claimed["kind"] == "k"
    assert claimed["attempt"] == 1 and claimed["pickup_seconds"] == 0.005
    assert failed["level"] == "warning" and failed["message"] == "boom"
