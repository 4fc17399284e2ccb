-- Enqueue a batch that needs none of conveyor_enqueue's checks (no idempotency key, no
-- explicit id: fresh uuid7 ids cannot conflict) in one statement, returning one row instead
-- of the stored jobs: the caller builds them from what it sent. Same columns and rules as
-- conveyor_enqueue (migrations/0001_init.sql).
--
-- The batch arrives column-wise, in the forms PostgreSQL parses fastest (a per-row JSON
-- record made every field go through its type's text input: 4.4 ms of 10 per 1,000 jobs):
--   %(ids)s       uuid[] literal, one id per job;
--   %(payloads)s  one JSON array, one object per job, in the same order;
--   %(shape_of)s  int[] literal: per job, the 1-based index of its options in
--   %(shapes)s    a JSON array of the batch's distinct option sets (queue, kind, priority,
--                 run_at, delay_us, max_attempts, timeout_us, trace; absent keys are null),
--                 usually one for a whole batch.
-- Returns the time it stored the jobs at. Should the joins ever drop a row (arrays of
-- different lengths), the statement fails, storing nothing: the cast of a text that is no
-- boolean raises (it names t.now so the planner cannot evaluate it ahead). When one of %(queues)s is bounded (has a max depth), inserts nothing and
-- returns bounded = true: the caller then goes through conveyor_enqueue, which counts.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now,
           EXISTS (SELECT 1 FROM queues q
                    WHERE q.max_depth IS NOT NULL AND q.name = ANY (%(queues)s::text[]))
               AS bounded
), inserted AS (
    INSERT INTO jobs (id, queue, kind, payload, status, priority, run_at, max_attempts,
                      timeout, trace, created_at, updated_at)
    SELECT r.id, s.queue, s.kind, coalesce(nullif(p.payload, 'null'::jsonb), '{}'::jsonb),
           CASE WHEN d.due > t.now THEN 'scheduled' ELSE 'queued' END,
           s.priority, greatest(d.due, t.now), s.max_attempts,
           s.timeout_us * interval '1 microsecond', s.trace, t.now, t.now
      FROM t
     CROSS JOIN unnest(%(ids)s::uuid[], %(shape_of)s::integer[])
           WITH ORDINALITY AS r(id, shape, n)
      JOIN jsonb_array_elements(%(payloads)s::jsonb) WITH ORDINALITY AS p(payload, n)
        ON p.n = r.n
      JOIN ROWS FROM (json_to_recordset(%(shapes)s::json)
               AS (queue text, kind text, priority integer, run_at timestamptz,
                   delay_us bigint, max_attempts integer, timeout_us bigint, trace text))
           WITH ORDINALITY
           AS s(queue, kind, priority, run_at, delay_us, max_attempts, timeout_us, trace, n)
        ON s.n = r.shape
     CROSS JOIN LATERAL (
           SELECT coalesce(s.run_at, t.now + s.delay_us * interval '1 microsecond', t.now)
               AS due) AS d
     WHERE NOT t.bounded
     RETURNING 1
)
SELECT t.now, t.bounded,
       CASE WHEN t.bounded OR (SELECT count(*) FROM inserted) = %(count)s THEN true
            ELSE ('enqueue_plain: the batch lost rows at ' || t.now)::boolean END AS complete
  FROM t
