-- Enqueue a batch that needs none of conveyor_enqueue's checks (no idempotency key, no
-- explicit id: fresh uuid7 ids cannot conflict) in one statement, returning one row instead
-- of the stored jobs: the caller builds them from what it sent. Same columns and rules as
-- conveyor_enqueue (migrations/0001_init.sql); keys left out of an object are null.
-- When one of %(queues)s is bounded (has a max depth), inserts nothing and returns
-- bounded = true: the caller then goes through conveyor_enqueue, which counts.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now,
           EXISTS (SELECT 1 FROM queues q
                    WHERE q.max_depth IS NOT NULL AND q.name = ANY (%(queues)s::text[]))
               AS bounded
), inserted AS (
    INSERT INTO jobs (id, queue, kind, payload, status, priority, run_at, max_attempts,
                      timeout, trace, created_at, updated_at)
    SELECT i.id, i.queue, i.kind, coalesce(i.payload, '{}'::jsonb),
           CASE WHEN d.due > t.now THEN 'scheduled' ELSE 'queued' END,
           i.priority, greatest(d.due, t.now), i.max_attempts,
           i.timeout_us * interval '1 microsecond', i.trace, t.now, t.now
      FROM t
     CROSS JOIN json_to_recordset(%(jobs)s::json)
           AS i(id uuid, queue text, kind text, payload jsonb, priority integer,
                run_at timestamptz, delay_us bigint, max_attempts integer, timeout_us bigint,
                trace text)
     CROSS JOIN LATERAL (
           SELECT coalesce(i.run_at, t.now + i.delay_us * interval '1 microsecond', t.now)
               AS due) AS d
     WHERE NOT t.bounded
)
SELECT t.now, t.bounded FROM t
