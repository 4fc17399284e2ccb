"""The whole exception tree of Conveyor, in one place.

Who raises what: backends translate their driver's exceptions into these at the method
boundary (chained with ``from exc``); the worker and the API only ever see these. The API
maps them to HTTP problem details once (``conveyor.api.problems``); the CLI maps them to
one-line messages and exit codes.

::

    ConveyorError
    ├── ConfigurationError          bad URL, unknown scheme, setting
    ├── BackendError                the store could not do what was asked
    │   ├── BackendUnavailable      cannot reach the server (retry later)
    │   ├── MigrationError          schema missing, too new, or a migration failed
    │   └── RecordConflict          a compare-and-set write lost (version changed)
    ├── JobError
    │   ├── JobNotFound             no job with that id
    │   ├── InvalidTransition       the job's status does not allow that verb
    │   ├── LeaseLost               the lease named is no longer current (fencing)
    │   └── DuplicateJob            (internal) lost an idempotency-key race
    ├── EnqueueRefused              the job was not stored, and why
    │   ├── QueueFull               the queue is at its max depth (HTTP 429 + Retry-After)
    │   ├── PayloadTooLarge         the payload is over the size limit
    │   └── InvalidPayload          not a JSON object, or does not bind to the task
    ├── UnknownKind                 no handler is registered for a kind
    └── AuthError
        ├── Unauthenticated         no or unknown token (401)
        └── Forbidden               the token lacks a scope (403)

Handler signals (``Retry``, ``Discard`` in ``conveyor.handler``) are deliberately *not* part
of this tree, so ``except ConveyorError`` around infrastructure never swallows them.
"""

from __future__ import annotations

from datetime import timedelta

# Exit codes of the command line (``conveyor ...`` and ``python -m conveyor.worker``).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: server or backend unreachable


class ConveyorError(Exception):
    """Base of every error Conveyor raises on purpose."""


class ConfigurationError(ConveyorError):
    """A setting, URL or option is wrong; the message says which and how to fix it."""


class BackendError(ConveyorError):
    """The backend could not carry out a request."""


class BackendUnavailable(BackendError):
    """The backend's server cannot be reached right now; the caller may retry."""


class MigrationError(BackendError):
    """The schema is missing, newer than this code, or a migration failed."""


class RecordConflict(BackendError):
    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"record {namespace}/{key} changed concurrently")
        self.namespace = namespace
        self.key = key


class JobError(ConveyorError):
    """A request about one job could not be carried out."""


class JobNotFound(JobError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class InvalidTransition(JobError):
    """The job's current status does not allow the verb (e.g. requeue a running job)."""

    def __init__(self, job_id: str, status: str, verb: str) -> None:
        super().__init__(f"cannot {verb} job {job_id} while it is {status}")
        self.job_id = job_id
        self.status = status
        self.verb = verb


class LeaseLost(JobError):
    """A write named a lease that is no longer current: the job was rescued, cancelled or
    finished by someone else. The write was refused and nothing changed."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"lease on job {job_id} is no longer held")
        self.job_id = job_id


class DuplicateJob(JobError):
    """Internal: an insert lost an idempotency-key race. Backends resolve it to the first job."""


class EnqueueRefused(ConveyorError):
    """The job was not stored. Nothing was written."""


class QueueFull(EnqueueRefused):
    def __init__(self, queue: str, max_depth: int, retry_after: timedelta) -> None:
        super().__init__(f"queue {queue!r} is at its maximum depth of {max_depth} jobs")
        self.queue = queue
        self.max_depth = max_depth
        self.retry_after = retry_after


class PayloadTooLarge(EnqueueRefused):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidPayload(EnqueueRefused):
    """The payload is not a JSON object or does not bind to the task's signature."""


class UnknownKind(ConveyorError):
    def __init__(self, kind: str, known: list[str] | None = None) -> None:
        hint = f"; known kinds: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"no handler is registered for kind {kind!r}{hint}")
        self.kind = kind
        self.known = sorted(known or [])


class AuthError(ConveyorError):
    """Authentication or authorisation failed."""


class Unauthenticated(AuthError):
    """No token, or a token that is unknown or revoked."""


class Forbidden(AuthError):
    def __init__(self, scope: str) -> None:
        super().__init__(f"this token lacks the {scope!r} scope")
        self.scope = scope


def exit_code(exc: ConveyorError) -> int:
    """The command line's exit code for an error: 69 when a server or backend cannot be
    reached (retry later), else 1."""
    return EXIT_UNAVAILABLE if isinstance(exc, BackendUnavailable) else EXIT_ERROR
