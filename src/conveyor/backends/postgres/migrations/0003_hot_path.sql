-- Conveyor on PostgreSQL, version 3: the worker's hot path.
--
-- 1. The idempotency key's unique index covers only jobs that have a key. Every version of
--    every row used to get an entry (NULL keys included), so each claim and each completion
--    (both non-HOT updates) inserted into it; most jobs have no key. ``ON CONFLICT DO NOTHING``
--    in conveyor_enqueue and its ``idempotency_key = key`` lookup use the partial index.
ALTER TABLE jobs DROP CONSTRAINT jobs_idempotency_key_key;
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- 2. conveyor_complete_claim, the worker's hot-loop call.
--
-- It completes a batch of jobs and claims up to p_limit new ones in one call (one round trip,
-- one commit). ``complete`` alone is a call with no queues, ``claim`` alone one with no
-- completions. It returns the claimed jobs, in no particular order, and one row per completion
-- whose lease was not current (fencing: those jobs are left unchanged) with only ``id`` set
-- and ``status`` NULL.
--
-- Why a function: its two statements are planned once per connection, as generic plans
-- (``SET plan_cache_mode``), where a prepared statement would be planned anew on every call
-- (PostgreSQL keeps choosing custom plans for it); planning cost more server CPU than running
-- the statement. A generic plan knows neither the limit nor the batch size, so both UPDATEs
-- find their rows through ``id = ANY (ARRAY(...))``: primary key lookups whatever the
-- estimates, never a join that a generic plan could turn into a scan of the table.
--
-- Claim: per queue, a LATERAL branch walks that queue's claim index in claim order, locks at
-- most p_limit rows with FOR UPDATE SKIP LOCKED and stops: a claim costs O(limit * queues),
-- never a scan and sort of the whole backlog. The outer query keeps the first p_limit of those
-- in claim order. Rows locked by a branch but not kept stay locked only until the transaction
-- ends and are left unchanged. No row lock is ever held while a job runs: a running job is
-- protected by its status and lease token. The status guard must stay textually identical to
-- jobs_claim_idx's predicate. The completed jobs (running) and the claimed ones (waiting) are
-- disjoint.
CREATE FUNCTION conveyor_complete_claim(
    p_now timestamptz, p_completions json, p_limit integer, p_worker text,
    p_lease_for interval, p_queues text[]
) RETURNS SETOF jobs
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_now  timestamptz := coalesce(p_now, clock_timestamp());
    v_id   uuid;
    v_lost jobs;
BEGIN
    IF json_array_length(p_completions) > 0 THEN
        FOR v_id IN
            WITH c AS (
                SELECT * FROM json_to_recordset(p_completions) AS c(id uuid, token text, result jsonb)
            ), done AS (
                UPDATE jobs
                   SET status = 'completed',
                       result = c.result,
                       finished_at = v_now,
                       updated_at = v_now,
                       lease_owner = NULL,
                       lease_token = NULL,
                       lease_expires_at = NULL
                  FROM c
                 WHERE jobs.id = ANY (ARRAY(SELECT c.id FROM c))
                   AND jobs.id = c.id AND jobs.lease_token = c.token
                   -- Not "status = 'running'": that matches jobs_lease_idx's predicate, and a
                   -- plan made without statistics walks that whole index (every running job,
                   -- and the dead entries of all the jobs that ran since the last vacuum).
                   AND (jobs.status || '') = 'running'
                RETURNING jobs.id
            )
            SELECT c.id FROM c WHERE c.id NOT IN (SELECT done.id FROM done)
        LOOP
            v_lost.id := v_id;
            RETURN NEXT v_lost;
        END LOOP;
    END IF;
    IF p_limit > 0 AND cardinality(p_queues) > 0 THEN
        RETURN QUERY
        WITH picked AS (
            SELECT cand.id
              FROM unnest(p_queues) AS qn(name)
                   CROSS JOIN LATERAL (
                       SELECT j.id, j.priority, j.run_at
                         FROM jobs j
                        WHERE j.status IN ('scheduled', 'queued', 'retrying')
                          AND j.queue = qn.name
                          AND j.run_at <= v_now
                          AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = qn.name AND q.paused)
                        ORDER BY j.priority DESC, j.run_at, j.id
                        LIMIT p_limit
                          FOR UPDATE OF j SKIP LOCKED
                   ) AS cand
             ORDER BY cand.priority DESC, cand.run_at, cand.id
             LIMIT p_limit
        )
        UPDATE jobs
           SET status = 'running',
               attempts = jobs.attempts + 1,
               started_at = v_now,
               updated_at = v_now,
               lease_owner = p_worker,
               lease_token = replace(gen_random_uuid()::text, '-', ''),
               lease_expires_at = v_now + p_lease_for
         WHERE jobs.id = ANY (ARRAY(SELECT picked.id FROM picked))
        RETURNING jobs.*;
    END IF;
END
$$;
