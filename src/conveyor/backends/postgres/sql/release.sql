-- Graceful shutdown: back to queued without charging the attempt (cancelled when a cancel
-- was requested), fenced on each lease; listeners are woken for the queues that got work.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), l AS (
    SELECT * FROM json_to_recordset(%(leases)s::json) AS l(id uuid, token text)
), released AS (
    UPDATE jobs
       SET status = CASE WHEN jobs.cancel_requested THEN 'cancelled' ELSE 'queued' END,
           run_at = CASE WHEN jobs.cancel_requested THEN jobs.run_at ELSE t.now END,
           attempts = greatest(jobs.attempts - 1, 0),
           finished_at = CASE WHEN jobs.cancel_requested THEN t.now END,
           updated_at = t.now,
           lease_owner = NULL,
           lease_token = NULL,
           lease_expires_at = NULL
      FROM l, t
     WHERE jobs.id = l.id AND jobs.status = 'running' AND jobs.lease_token = l.token
    RETURNING jobs.id, jobs.queue, jobs.status
)
SELECT id, CASE WHEN status = 'queued' THEN conveyor_wake(queue, t.now) END AS notified
  FROM released, t
