-- enqueue_plain.sql for a batch of one job, the common single enqueue (the API's POST, a
-- task's enqueue): the same columns and rules, with every value a scalar parameter. It
-- skips the batch statement's array and JSON unpacking and joins, 0.3-0.4 ms of a 2 ms
-- enqueue call here (docs/performance.md, "Third pass"). Returns the time it stored the job
-- at; when %(queue)s is bounded, inserts nothing and returns bounded = true (the caller then
-- goes through conveyor_enqueue, which counts).
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now,
           EXISTS (SELECT 1 FROM queues q
                    WHERE q.max_depth IS NOT NULL AND q.name = %(queue)s::text) AS bounded
), d AS (
    SELECT t.now, t.bounded,
           coalesce(%(run_at)s::timestamptz,
                    t.now + %(delay_us)s::bigint * interval '1 microsecond', t.now) AS due
      FROM t
), inserted AS (
    INSERT INTO jobs (id, queue, kind, payload, status, priority, run_at, max_attempts,
                      timeout, trace, created_at, updated_at)
    SELECT %(id)s::uuid, %(queue)s::text, %(kind)s::text,
           coalesce(nullif(%(payload)s::jsonb, 'null'::jsonb), '{}'::jsonb),
           CASE WHEN d.due > d.now THEN 'scheduled' ELSE 'queued' END,
           %(priority)s::integer, greatest(d.due, d.now), %(max_attempts)s::integer,
           %(timeout_us)s::bigint * interval '1 microsecond', %(trace)s::text, d.now, d.now
      FROM d
     WHERE NOT d.bounded
)
SELECT t.now, t.bounded FROM t
