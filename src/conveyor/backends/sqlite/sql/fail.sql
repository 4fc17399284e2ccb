-- End a failed attempt (see FailRequest). Every SET expression reads the row's old values.
UPDATE conveyor_jobs
SET status = CASE
        WHEN cancel_requested = 1 THEN 'cancelled'
        WHEN :retry_at IS NOT NULL THEN 'retrying'
        ELSE 'failed' END,
    run_at = CASE
        WHEN cancel_requested = 0 AND :retry_at IS NOT NULL THEN :retry_at
        ELSE run_at END,
    finished_at = CASE
        WHEN cancel_requested = 1 OR :retry_at IS NULL THEN :now
        ELSE NULL END,
    attempts = max(attempts - :uncharged, 0),
    errors = CASE
        WHEN :error IS NULL THEN errors
        ELSE json_insert(errors, '$[#]', json(:error)) END,
    updated_at = :now,
    lease_owner = NULL,
    lease_token = NULL,
    lease_expires_at = NULL
WHERE id = :id AND status = 'running' AND lease_token = :token
RETURNING /*job_columns*/
