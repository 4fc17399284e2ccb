UPDATE conveyor_jobs
SET cancel_requested = 1, updated_at = :now
WHERE id = :id AND status = 'running'
RETURNING /*job_columns*/
