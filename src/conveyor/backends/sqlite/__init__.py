"""The SQLite engine: Conveyor's embedded, zero-setup default (``sqlite:///conveyor.db``).

Several processes on one machine (the API and any number of workers) may share one file.
How it stays correct and fast is written where it happens: ``connection.py`` (threads,
``BEGIN IMMEDIATE``, pragmas, busy handling), ``wakeups.py`` (``wait_for_work`` without a
server), ``sql/claim.sql`` (atomic claims), ``migrations.py``.

Durability: WAL with ``synchronous=NORMAL``. A committed job survives a crash (even
``kill -9``) of any Conveyor process, since the OS holds the WAL; a power loss or kernel
crash may lose the transactions committed since the last checkpoint (the database stays
consistent). Per-commit fsync (``FULL``) cost 3x on one-job enqueues here and more on slow
disks; see ``connection.SYNCHRONOUS``.

Capabilities: MULTI_PROCESS and NOTIFY (``wait_for_work`` sees another process's enqueue
within a few ms by polling ``PRAGMA data_version``), not MULTI_HOST or
TRANSACTIONAL_ENQUEUE. ``QueueFull.retry_after`` is 2 s (``enqueue.QUEUE_FULL_RETRY_AFTER``).
"""

from conveyor.backends.sqlite.backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
