UPDATE conveyor_jobs
SET status = 'cancelled', finished_at = :now, updated_at = :now
WHERE id = :id AND status IN ('scheduled', 'queued', 'retrying')
RETURNING /*job_columns*/
