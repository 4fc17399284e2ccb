-- Conveyor's SQLite schema, version 1.
-- Times are integer microseconds since the Unix epoch (exact ordering, no text parsing).
-- JSON columns hold JSON text. Booleans are 0/1.

CREATE TABLE conveyor_jobs (
    id               TEXT PRIMARY KEY,          -- UUIDv7: sorts in creation order
    queue            TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN (
                         'scheduled', 'queued', 'running', 'retrying',
                         'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    timeout_us       INTEGER,
    idempotency_key  TEXT,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    result           TEXT,
    errors           TEXT NOT NULL DEFAULT '[]',
    progress         TEXT,
    trace            TEXT,
    rescues          INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- An idempotency key is held by at most one stored job, across every process.
CREATE UNIQUE INDEX conveyor_jobs_idempotency
    ON conveyor_jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Serves the claim ordering (one queue at a time) and the QueueFull depth count.
-- The WHERE must stay textually identical to the claim query's status guard.
CREATE INDEX conveyor_jobs_claim
    ON conveyor_jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('scheduled', 'queued', 'retrying');

-- Serves rescue: running jobs by lease expiry.
CREATE INDEX conveyor_jobs_lease
    ON conveyor_jobs (lease_expires_at) WHERE status = 'running';

-- Serves purge and the "finished in the last minute" stats.
CREATE INDEX conveyor_jobs_finished
    ON conveyor_jobs (status, finished_at) WHERE finished_at IS NOT NULL;

-- Serves list filters on the creation range.
CREATE INDEX conveyor_jobs_created ON conveyor_jobs (created_at);

-- Serves stats (counts by queue and status, a covering scan) and list filters by queue.
CREATE INDEX conveyor_jobs_queue_status ON conveyor_jobs (queue, status);

CREATE TABLE conveyor_job_logs (
    job_id TEXT NOT NULL REFERENCES conveyor_jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    line   TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE conveyor_queues (
    queue     TEXT PRIMARY KEY,
    paused    INTEGER NOT NULL DEFAULT 0,
    max_depth INTEGER
);

CREATE TABLE conveyor_workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT NOT NULL,
    kinds        TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    running      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);

CREATE TABLE conveyor_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
