-- End a failed attempt of one job, fenced on its lease (see FailRequest).
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), target AS (
    SELECT CASE WHEN j.cancel_requested THEN 'cancelled'
                WHEN %(retry_after)s::interval IS NULL THEN 'failed'
                ELSE 'retrying' END AS status
      FROM jobs j
     WHERE j.id = %(id)s AND j.status = 'running' AND j.lease_token = %(token)s
)
UPDATE jobs
   SET status = target.status,
       run_at = CASE WHEN target.status = 'retrying'
                     THEN t.now + %(retry_after)s::interval ELSE jobs.run_at END,
       attempts = jobs.attempts - CASE WHEN %(charge)s THEN 0 ELSE 1 END,
       errors = CASE WHEN %(error)s::jsonb IS NULL THEN jobs.errors
                     ELSE jobs.errors || jsonb_build_array(%(error)s::jsonb) END,
       finished_at = CASE WHEN target.status = 'retrying' THEN NULL ELSE t.now END,
       updated_at = t.now,
       lease_owner = NULL,
       lease_token = NULL,
       lease_expires_at = NULL
  FROM target, t
 WHERE jobs.id = %(id)s AND jobs.status = 'running' AND jobs.lease_token = %(token)s
RETURNING jobs.*
