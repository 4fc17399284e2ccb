-- failed/cancelled -> queued, attempts and rescues reset, errors kept as history.
-- The filter placeholder is a conjunction built from a JobFilter (filters.py).
UPDATE conveyor_jobs
SET status = 'queued',
    attempts = 0,
    rescues = 0,
    run_at = :now,
    cancel_requested = 0,
    finished_at = NULL,
    updated_at = :now
WHERE id IN (
    SELECT id FROM conveyor_jobs
    WHERE status IN (SELECT value FROM json_each(:requeue_statuses)) AND /*filter*/
    ORDER BY id
    LIMIT :limit
)
RETURNING id
