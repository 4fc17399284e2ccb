-- claim.sql for the common case of a single queue: the claim index then yields rows in
-- claim order, so no sort of the whole backlog is needed.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), picked AS (
    SELECT j.id
      FROM jobs j, t
     WHERE j.status IN ('scheduled', 'queued', 'retrying')
       AND j.queue = %(queue)s::text
       AND j.run_at <= t.now
       AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = %(queue)s::text AND q.paused)
     ORDER BY j.priority DESC, j.run_at, j.id
     LIMIT %(limit)s
       FOR UPDATE OF j SKIP LOCKED
)
UPDATE jobs
   SET status = 'running',
       attempts = jobs.attempts + 1,
       started_at = t.now,
       updated_at = t.now,
       lease_owner = %(worker)s,
       lease_token = replace(gen_random_uuid()::text, '-', ''),
       lease_expires_at = t.now + %(lease_for)s::interval
  FROM picked, t
 WHERE jobs.id = picked.id
RETURNING jobs.*
