-- Conveyor on PostgreSQL, version 1: jobs, their logs, queue settings, workers, API tokens,
-- the enqueue function and the NOTIFY trigger. Applied by migrations.py inside one
-- transaction under a transaction-scoped advisory lock.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    queue            text NOT NULL,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL CHECK (status IN ('scheduled', 'queued', 'running',
                         'retrying', 'completed', 'failed', 'cancelled')),
    priority         smallint NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    timeout          interval,
    -- NULLS DISTINCT (the default): any number of jobs without a key.
    idempotency_key  text UNIQUE,
    lease_owner      text,
    lease_token      text,
    lease_expires_at timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    result           jsonb,
    errors           jsonb NOT NULL DEFAULT '[]'::jsonb,
    progress         jsonb,
    trace            text,
    rescues          integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    log_seq          bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT jobs_running_has_lease CHECK (
        status <> 'running' OR (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- A queue table is updated all the time: leave room on each page for HOT updates, and let
-- autovacuum come early and often so dead tuples from claims and completions do not pile up
-- (RELIABILITY.md: MVCC bloat).
ALTER TABLE jobs SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);

-- Claim order among waiting jobs of one queue: priority DESC, run_at, id.
CREATE INDEX jobs_claim_idx ON jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('scheduled', 'queued', 'retrying');
-- Rescue: running jobs by lease expiry.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
-- Purge, recent completions in stats, dead-letter listings.
CREATE INDEX jobs_finished_idx ON jobs (status, finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_logs (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    bigint NOT NULL,
    at     timestamptz NOT NULL,
    line   text NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE queues (
    name       text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    max_depth  integer CHECK (max_depth IS NULL OR max_depth >= 0),
    updated_at timestamptz NOT NULL
);

CREATE TABLE workers (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    queues       text[] NOT NULL,
    kinds        text[] NOT NULL,
    concurrency  integer NOT NULL,
    running      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE INDEX workers_last_seen_idx ON workers (last_seen_at);

CREATE TABLE api_tokens (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    scopes      text[] NOT NULL,
    secret_hash text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- Wake-up hint for listeners: the payload is the queue name ('*' for names too long for a
-- NOTIFY payload). PostgreSQL folds identical notifications within one transaction.
CREATE FUNCTION conveyor_notify(p_queue text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_notify('conveyor_jobs',
                      CASE WHEN octet_length(p_queue) <= 1000 THEN p_queue ELSE '*' END);
    RETURN true;
END;
$$;

CREATE FUNCTION conveyor_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM conveyor_notify(q.queue)
       FROM (SELECT DISTINCT queue FROM new_jobs WHERE status = 'queued') AS q;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert
    AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_jobs_inserted();

-- Enqueue a batch in the caller's transaction. p_jobs is a JSON array with one object per
-- job: id, queue, kind, payload, priority, run_at (ISO 8601 or null), delay_us,
-- max_attempts, timeout_us, idempotency_key, trace (durations in microseconds). JSON rather
-- than one array parameter per column: the client serialises it in one C call (orjson).
-- Returns one row per input: its 1-based position, whether this call created the job, and
-- the stored job (for an id or idempotency key already held: the existing job, unchanged).
-- Ids must be distinct within one call (the caller checks).
-- Raises SQLSTATE CV001 (DETAIL = queue, HINT = max depth) when a bounded queue would
-- overflow; the caller's statement (or savepoint) is rolled back, so nothing is stored.
CREATE FUNCTION conveyor_enqueue(p_now timestamptz, p_jobs json)
RETURNS TABLE (ord bigint, created boolean, job jobs)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_now    timestamptz := coalesce(p_now, clock_timestamp());
    v_ids    uuid[];
    v_keys   text[];
    v_queues text[];
    v_new    jobs[];
    v_queue  record;
    v_depth  bigint;
BEGIN
    SELECT array_agg(i.id ORDER BY i.ord), array_agg(i.idempotency_key ORDER BY i.ord),
           array_agg(DISTINCT i.queue)
      INTO v_ids, v_keys, v_queues
      FROM ROWS FROM (json_to_recordset(p_jobs) AS (id uuid, idempotency_key text, queue text))
           WITH ORDINALITY AS i(id, idempotency_key, queue, ord);

    -- Serialise enqueues into bounded queues, in name order (no deadlocks). In READ
    -- COMMITTED every later statement of this function takes a fresh snapshot, so the depth
    -- count below sees every job committed by whoever held the lock before us.
    FOR v_queue IN
        SELECT q.name FROM queues q
         WHERE q.max_depth IS NOT NULL AND q.name = ANY (v_queues)
         ORDER BY q.name
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('conveyor.queue_depth:' || v_queue.name, 0));
    END LOOP;

    WITH input AS (
        SELECT i.*,
               coalesce(i.run_at, v_now + i.delay_us * interval '1 microsecond', v_now) AS due
          FROM ROWS FROM (json_to_recordset(p_jobs)
                   AS (id uuid, queue text, kind text, payload jsonb, priority integer,
                       run_at timestamptz, delay_us bigint, max_attempts integer,
                       timeout_us bigint, idempotency_key text, trace text))
               WITH ORDINALITY
               AS i(id, queue, kind, payload, priority, run_at, delay_us, max_attempts,
                    timeout_us, idempotency_key, trace, ord)
    ), inserted AS (
        INSERT INTO jobs (id, queue, kind, payload, status, priority, run_at, max_attempts,
                          timeout, idempotency_key, trace, created_at, updated_at)
        SELECT id, queue, kind, coalesce(payload, '{}'::jsonb),
               CASE WHEN due > v_now THEN 'scheduled' ELSE 'queued' END,
               priority, greatest(due, v_now), max_attempts,
               timeout_us * interval '1 microsecond', idempotency_key, trace, v_now, v_now
          FROM input ORDER BY ord
        ON CONFLICT DO NOTHING
        RETURNING *
    )
    SELECT coalesce(array_agg(inserted), '{}') INTO v_new FROM inserted;

    FOR v_queue IN
        SELECT q.name, q.max_depth FROM queues q
         WHERE q.max_depth IS NOT NULL
           AND q.name IN (SELECT n.queue FROM unnest(v_new) AS n)
         ORDER BY q.name
    LOOP
        SELECT count(*) INTO v_depth FROM jobs j
         WHERE j.queue = v_queue.name AND j.status IN ('scheduled', 'queued', 'retrying');
        IF v_depth > v_queue.max_depth THEN
            RAISE EXCEPTION 'queue % is full', v_queue.name
                USING ERRCODE = 'CV001', DETAIL = v_queue.name, HINT = v_queue.max_depth::text;
        END IF;
    END LOOP;

    RETURN QUERY
        SELECT i.ord, true, n
          FROM unnest(v_new) AS n
          JOIN unnest(v_ids) WITH ORDINALITY AS i(id, ord) ON i.id = n.id;

    IF cardinality(v_new) < cardinality(v_ids) THEN
        -- Not inserted: the id or the idempotency key is held already (by a committed job,
        -- or earlier in this batch or transaction). Return that job, unchanged.
        RETURN QUERY
            SELECT i.ord, false, e.j
              FROM unnest(v_ids, v_keys) WITH ORDINALITY AS i(id, key, ord)
             CROSS JOIN LATERAL (
                   SELECT x FROM jobs x WHERE x.id = i.id
                    UNION ALL
                   SELECT y FROM jobs y WHERE y.idempotency_key = i.key
                    LIMIT 1) AS e(j)
             WHERE NOT EXISTS (SELECT 1 FROM unnest(v_new) AS n WHERE n.id = i.id);
    END IF;
END;
$$;
