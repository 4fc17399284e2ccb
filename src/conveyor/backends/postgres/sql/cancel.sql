-- Cancel: a waiting job is cancelled at once; a running job keeps running with
-- cancel_requested set (its worker learns it on renew). Final jobs are not touched.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
)
UPDATE jobs
   SET status = CASE WHEN jobs.status = 'running' THEN 'running' ELSE 'cancelled' END,
       cancel_requested = jobs.cancel_requested OR jobs.status = 'running',
       finished_at = CASE WHEN jobs.status = 'running' THEN NULL ELSE t.now END,
       updated_at = t.now
  FROM t
 WHERE jobs.id = %(id)s
   AND jobs.status IN ('scheduled', 'queued', 'retrying', 'running')
RETURNING jobs.*
