-- Append lines to a job's log. The counter on the job row hands out seq numbers; its row
-- lock serialises concurrent appends to the same job, so seq is gap-free and ordered.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), bump AS (
    UPDATE jobs SET log_seq = log_seq + cardinality(%(lines)s::text[])
     WHERE id = %(id)s
    RETURNING log_seq
)
INSERT INTO job_logs (job_id, seq, at, line)
SELECT %(id)s, bump.log_seq - cardinality(%(lines)s::text[]) + l.ord, t.now, l.line
  FROM bump, t, unnest(%(lines)s::text[]) WITH ORDINALITY AS l(line, ord)
RETURNING seq
