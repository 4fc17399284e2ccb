-- Heartbeat: extend every lease that is still current, in one statement. The leases come
-- as one JSON array of {id, token} (serialised in C by orjson, parsed in C by PostgreSQL).
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), l AS (
    SELECT * FROM json_to_recordset(%(leases)s::json) AS l(id uuid, token text)
)
UPDATE jobs
   SET lease_expires_at = t.now + %(lease_for)s::interval,
       updated_at = t.now
  FROM l, t
 WHERE jobs.id = l.id AND jobs.status = 'running' AND jobs.lease_token = l.token
RETURNING jobs.id, jobs.cancel_requested
