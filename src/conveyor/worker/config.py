"""Worker settings as one frozen value. Built by the CLI (from flags and ``Settings``), by
``conveyor up``, by ``conveyor.testing`` and by tests; read by every loop of the runtime."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta

from conveyor.backend import DEFAULT_LEASE, DEFAULT_MAX_RESCUES, PurgeRequest
from conveyor.ids import new_token
from conveyor.jobs import DEFAULT_QUEUE, WorkerId


def default_worker_id() -> WorkerId:
    return WorkerId(f"{socket.gethostname()}:{os.getpid()}:{new_token(4)}")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How one worker process runs.

    ``concurrency``: leases held at once, i.e. jobs running plus jobs whose completion is
    not written yet (the claimer never claims more than the free slots, so a killed worker
    leaves at most ``concurrency`` jobs to rescue). ``thread_pool_size`` /
    ``process_pool_size``: for sync and ``cpu_bound`` tasks (None: ``concurrency`` threads,
    ``os.cpu_count()`` processes). ``default_timeout``: a job with no timeout of its own or
    its task's. ``lease``: renewed every ``lease / 3``.
    ``poll_interval``: the claimer's backstop poll (jittered to 50-100 %), also with
    notifications. ``completion_flush_interval`` / ``completion_batch``: completions are
    written in batches, at the latest after this delay or when that many are waiting.
    ``retention``: the purge run every ``purge_interval`` (None: no purge by this worker).
    """

    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    concurrency: int = 10
    worker_id: WorkerId = field(default_factory=default_worker_id)
    lease: timedelta = DEFAULT_LEASE
    grace: timedelta = timedelta(seconds=30)
    default_timeout: timedelta = timedelta(minutes=30)
    poll_interval: timedelta = timedelta(milliseconds=500)
    completion_flush_interval: timedelta = timedelta(milliseconds=5)
    completion_batch: int = 200
    rescue_interval: timedelta = timedelta(seconds=5)
    max_rescues: int = DEFAULT_MAX_RESCUES
    purge_interval: timedelta = timedelta(minutes=5)
    retention: PurgeRequest | None = field(default_factory=PurgeRequest)
    registry_interval: timedelta = timedelta(seconds=5)
    cron: bool = True
    cron_interval: timedelta = timedelta(seconds=1)
    thread_pool_size: int | None = None
    process_pool_size: int | None = None

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.lease <= timedelta(0) or self.poll_interval <= timedelta(0):
            raise ValueError("lease and poll_interval must be positive")

    @property
    def renew_interval(self) -> timedelta:
        return self.lease / 3
