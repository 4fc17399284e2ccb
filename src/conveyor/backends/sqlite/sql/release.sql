-- Graceful shutdown: back to queued, the attempt not charged; cancelled when asked to.
UPDATE conveyor_jobs
SET status = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,
    run_at = CASE WHEN cancel_requested = 1 THEN run_at ELSE :now END,
    finished_at = CASE WHEN cancel_requested = 1 THEN :now ELSE NULL END,
    attempts = max(attempts - 1, 0),
    updated_at = :now,
    lease_owner = NULL,
    lease_token = NULL,
    lease_expires_at = NULL
WHERE id = :id AND status = 'running' AND lease_token = :token
