-- Per-queue counts for every queue that has jobs or settings.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), counts AS (
    SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status
), names AS (
    SELECT queue AS name FROM counts UNION SELECT name FROM queues
)
SELECT n.name,
       coalesce((SELECT jsonb_object_agg(c.status, c.n) FROM counts c WHERE c.queue = n.name),
                '{}'::jsonb) AS counts,
       (SELECT min(j.run_at) FROM jobs j
         WHERE j.queue = n.name AND j.status IN ('scheduled', 'queued', 'retrying')
           AND j.run_at <= t.now) AS oldest_queued_at,
       (SELECT count(*) FROM jobs j
         WHERE j.queue = n.name AND j.status = 'completed'
           AND j.finished_at >= t.now - interval '1 minute') AS completed_last_minute,
       (SELECT count(*) FROM jobs j
         WHERE j.queue = n.name AND j.status = 'failed'
           AND j.finished_at >= t.now - interval '1 minute') AS failed_last_minute,
       coalesce(q.paused, false) AS paused,
       q.max_depth
  FROM names n CROSS JOIN t LEFT JOIN queues q ON q.name = n.name
