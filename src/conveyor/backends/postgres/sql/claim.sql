-- Claim up to %(limit)s jobs of one or more queues in one short statement. The row locks
-- taken by FOR UPDATE ... SKIP LOCKED last only for this statement: a running job is
-- protected by its status and lease token, never by a lock held while it runs.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), picked AS (
    SELECT j.id
      FROM jobs j, t
     WHERE j.status IN ('scheduled', 'queued', 'retrying')
       AND j.queue = ANY (%(queues)s::text[])
       AND j.run_at <= t.now
       AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = j.queue AND q.paused)
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
