-- Conveyor on PostgreSQL, version 4: standing claims (handoff, docs/decisions.md D21).
--
-- A worker whose claim found fewer jobs than its free slots leaves a standing claim for one
-- job: a row of conveyor_standby, alive for its wait plus a margin (real time, whatever the
-- caller's clock). The insert trigger of jobs, in the enqueue's own transaction, claims the
-- best claimable job of the queue for it, exactly as conveyor_complete_claim claims, marks the
-- row as used (job_id) and sends ``NOTIFY <its channel>, '<token> <job>'``; the channel is
-- the worker process's own, which its listener connection LISTENs on. The notification
-- carries the job (conveyor_job_json), so the worker starts it at once and deletes the used
-- row afterwards. A wait that ends otherwise (timeout, a queue's notification, a stop)
-- deletes its row (sql/standby_end.sql) and gets the job named there, if any: a job reaches
-- its worker once, by the notification while the wait is on or by the row after it, and a
-- notification lost in a reconnect loses nothing. The table is UNLOGGED: a
-- standing claim is a hint that lives for a second, and a crash ends every wait anyway.

CREATE UNLOGGED TABLE conveyor_standby (
    token      text PRIMARY KEY,
    channel    text NOT NULL,
    worker     text NOT NULL,
    queues     text[] NOT NULL,
    lease_for  interval NOT NULL,
    expires_at timestamptz NOT NULL,
    job_id     uuid  -- set when a job was handed to it
);

-- conveyor_complete_claim, and a standing claim under p_standby when fewer than p_limit rows
-- come back (a lost completion's row counts too: then no claim stands and the worker waits
-- for the queue's notification instead, which is always correct).
CREATE FUNCTION conveyor_complete_claim(
    p_now timestamptz, p_completions json, p_limit integer, p_worker text,
    p_lease_for interval, p_queues text[], p_standby text, p_channel text,
    p_standby_for interval
) RETURNS SETOF jobs
LANGUAGE plpgsql AS $$
DECLARE
    v_rows bigint;
BEGIN
    RETURN QUERY SELECT * FROM conveyor_complete_claim(p_now, p_completions, p_limit, p_worker,
                                                       p_lease_for, p_queues);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF p_standby IS NOT NULL AND p_limit > 0 AND v_rows < p_limit
       AND cardinality(p_queues) > 0 THEN
        DELETE FROM conveyor_standby
         WHERE token IN (SELECT s.token FROM conveyor_standby s
                          WHERE s.expires_at < clock_timestamp() - interval '1 minute'
                            FOR UPDATE SKIP LOCKED);
        INSERT INTO conveyor_standby (token, channel, worker, queues, lease_for, expires_at)
        VALUES (p_standby, p_channel, p_worker, p_queues, p_lease_for,
                clock_timestamp() + p_standby_for);
    END IF;
END
$$;

-- A job as the NOTIFY of a handoff carries it: a JSON array in the order rows.py's
-- job_from_handoff reads, times and the timeout in integer microseconds (since the epoch).
CREATE FUNCTION conveyor_job_json(j jobs) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_array(
        j.id, j.queue, j.kind, j.payload, j.status, j.priority,
        (extract(epoch FROM j.run_at) * 1000000)::bigint, j.attempts, j.max_attempts,
        (extract(epoch FROM j.timeout) * 1000000)::bigint, j.idempotency_key, j.lease_owner,
        (extract(epoch FROM j.lease_expires_at) * 1000000)::bigint,
        (extract(epoch FROM j.started_at) * 1000000)::bigint,
        (extract(epoch FROM j.finished_at) * 1000000)::bigint,
        j.result, j.errors, j.progress, j.trace, j.rescues, j.cancel_requested,
        (extract(epoch FROM j.created_at) * 1000000)::bigint,
        (extract(epoch FROM j.updated_at) * 1000000)::bigint)::text
$$;

-- Hand the best claimable jobs of p_queue to live standing claims, one job each. Returns
-- true when claimable jobs may remain (the caller then notifies the other listeners).
CREATE FUNCTION conveyor_handoff(p_queue text, p_now timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_sb     conveyor_standby;
    v_id     uuid;
    v_job    jobs;
    v_msg    text;
    v_handed boolean := false;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conveyor_standby WHERE job_id IS NULL)
       OR EXISTS (SELECT 1 FROM queues q WHERE q.name = p_queue AND q.paused) THEN
        RETURN true;
    END IF;
    LOOP
        SELECT * INTO v_sb FROM conveyor_standby s
         WHERE p_queue = ANY (s.queues) AND s.job_id IS NULL
           AND s.expires_at > clock_timestamp()
         LIMIT 1
           FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN  -- no standing claim left: are jobs left for the others?
            RETURN NOT v_handed OR EXISTS (
                SELECT 1 FROM jobs j
                 WHERE j.status IN ('scheduled', 'queued', 'retrying')
                   AND j.queue = p_queue AND j.run_at <= p_now);
        END IF;
        SELECT j.id INTO v_id
          FROM jobs j
         WHERE j.status IN ('scheduled', 'queued', 'retrying')
           AND j.queue = p_queue
           AND j.run_at <= p_now
         ORDER BY j.priority DESC, j.run_at, j.id
         LIMIT 1
           FOR UPDATE OF j SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        UPDATE jobs
           SET status = 'running',
               attempts = jobs.attempts + 1,
               started_at = p_now,
               updated_at = p_now,
               lease_owner = v_sb.worker,
               lease_token = v_sb.token || 'h',
               lease_expires_at = p_now + v_sb.lease_for
         WHERE jobs.id = v_id
        RETURNING * INTO v_job;
        UPDATE conveyor_standby SET job_id = v_id WHERE token = v_sb.token;
        v_msg := v_sb.token || ' ' || conveyor_job_json(v_job);
        IF octet_length(v_msg) > 7999 THEN  -- NOTIFY's limit: the worker collects it instead
            v_msg := v_sb.token;
        END IF;
        PERFORM pg_notify(v_sb.channel, v_msg);
        v_handed := true;
    END LOOP;
END
$$;

-- Jobs became claimable in p_queue at p_now: hand them to standing claims, then notify the
-- other listeners only if some may be left. Called by the insert trigger and by release,
-- rescue and requeue, in place of conveyor_notify. Not inside a caller's transaction
-- (``enqueue_in`` sets conveyor.handoff = off): that would hold a standing claim's row lock
-- for as long as the caller's transaction runs.
CREATE FUNCTION conveyor_wake(p_queue text, p_now timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF coalesce(current_setting('conveyor.handoff', true), '') = 'off'
       OR conveyor_handoff(p_queue, p_now) THEN
        PERFORM conveyor_notify(p_queue);
    END IF;
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION conveyor_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM conveyor_wake(n.queue, max(n.created_at))
       FROM new_jobs n WHERE n.status = 'queued' GROUP BY n.queue;
    RETURN NULL;
END;
$$;

-- Withdraw standing claim p_token, returning the job handed to it (if any, and still running
-- under the handed lease p_lease). A function, not one statement: the DELETE may wait for an
-- enqueue that holds the claim's row and hands it a job; only a query started after that
-- wait (a new snapshot) sees the job the enqueue just committed.
CREATE FUNCTION conveyor_standby_end(p_token text, p_lease text) RETURNS SETOF jobs
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
BEGIN
    DELETE FROM conveyor_standby WHERE token = p_token RETURNING job_id INTO v_id;
    IF v_id IS NOT NULL THEN
        RETURN QUERY SELECT * FROM jobs j
                      WHERE j.id = v_id AND j.lease_token = p_lease AND j.status = 'running';
    END IF;
END
$$;
