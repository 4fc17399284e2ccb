WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
)
UPDATE jobs
   SET progress = %(progress)s::jsonb, updated_at = t.now
  FROM t
 WHERE jobs.id = %(id)s AND jobs.status = 'running' AND jobs.lease_token = %(token)s
RETURNING jobs.id
