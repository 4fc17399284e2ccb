-- Withdraw standing claim %(token)s; returns the job handed to it meanwhile, if any (still
-- running under the handed lease %(lease)s).
WITH gone AS (
    DELETE FROM conveyor_standby WHERE token = %(token)s::text RETURNING job_id
)
SELECT * FROM jobs
 WHERE id = (SELECT gone.job_id FROM gone) AND lease_token = %(lease)s::text
   AND status = 'running'
