-- Complete a batch; only jobs whose lease is still current are changed (fencing).
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), c AS (
    SELECT * FROM json_to_recordset(%(completions)s::json) AS c(id uuid, token text, result jsonb)
)
UPDATE jobs
   SET status = 'completed',
       result = c.result,
       finished_at = t.now,
       updated_at = t.now,
       lease_owner = NULL,
       lease_token = NULL,
       lease_expires_at = NULL
  FROM c, t
 WHERE jobs.id = c.id AND jobs.status = 'running' AND jobs.lease_token = c.token
RETURNING jobs.id
