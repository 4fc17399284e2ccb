UPDATE conveyor_jobs
SET status = 'completed',
    result = :result,
    finished_at = :now,
    updated_at = :now,
    lease_owner = NULL,
    lease_token = NULL,
    lease_expires_at = NULL
WHERE id = :id AND status = 'running' AND lease_token = :token
