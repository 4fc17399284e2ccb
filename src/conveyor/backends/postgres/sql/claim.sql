-- Claim up to %(limit)s jobs of one or several queues in one short statement. Per queue, a
-- LATERAL branch walks that queue's claim index in claim order, locks at most %(limit)s rows
-- with FOR UPDATE SKIP LOCKED and stops: a claim costs O(limit * queues), never a scan and
-- sort of the whole backlog. The outer query keeps the first %(limit)s of those in claim
-- order. Rows locked by a branch but not kept stay locked only until this statement's
-- transaction ends (an autocommit statement: at once) and are left unchanged. No row lock is
-- ever held while a job runs: a running job is protected by its status and lease token.
-- The status guard must stay textually identical to jobs_claim_idx's predicate.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), picked AS (
    SELECT c.id
      FROM t,
           unnest(%(queues)s::text[]) AS qn(name)
           CROSS JOIN LATERAL (
               SELECT j.id, j.priority, j.run_at
                 FROM jobs j
                WHERE j.status IN ('scheduled', 'queued', 'retrying')
                  AND j.queue = qn.name
                  AND j.run_at <= t.now
                  AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused)
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT %(limit)s
                  FOR UPDATE OF j SKIP LOCKED
           ) AS c
     ORDER BY c.priority DESC, c.run_at, c.id
     LIMIT %(limit)s
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
