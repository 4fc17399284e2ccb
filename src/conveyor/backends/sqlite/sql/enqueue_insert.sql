-- Any uniqueness conflict (idempotency key, or a caller-chosen id already stored) inserts
-- nothing; the caller then reads the existing job.
INSERT INTO conveyor_jobs (
    id, queue, kind, payload, status, priority, run_at, max_attempts, timeout_us,
    idempotency_key, trace, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
