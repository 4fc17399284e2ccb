-- Retention: delete final jobs that finished long enough ago; their logs go by cascade.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), doomed AS (
    SELECT j.id
      FROM jobs j, t
     WHERE (j.status = 'completed' AND %(completed)s::interval IS NOT NULL
            AND j.finished_at < t.now - %(completed)s::interval)
        OR (j.status = 'failed' AND %(failed)s::interval IS NOT NULL
            AND j.finished_at < t.now - %(failed)s::interval)
        OR (j.status = 'cancelled' AND %(cancelled)s::interval IS NOT NULL
            AND j.finished_at < t.now - %(cancelled)s::interval)
     LIMIT %(limit)s
       FOR UPDATE OF j SKIP LOCKED
)
DELETE FROM jobs USING doomed WHERE jobs.id = doomed.id
RETURNING jobs.id
