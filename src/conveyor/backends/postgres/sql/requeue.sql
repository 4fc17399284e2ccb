-- Bring failed or cancelled jobs matching the filter back to queued (see RequeueRequest).
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), picked AS (
    SELECT id
      FROM jobs
     WHERE status = ANY (%(statuses)s::text[])
       AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
       AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
       AND (%(ids)s::uuid[] IS NULL OR id = ANY (%(ids)s::uuid[]))
       AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s::timestamptz)
       AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s::timestamptz)
     ORDER BY id
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), requeued AS (
    UPDATE jobs
       SET status = 'queued',
           attempts = 0,
           rescues = 0,
           run_at = t.now,
           cancel_requested = false,
           finished_at = NULL,
           updated_at = t.now
      FROM picked, t
     WHERE jobs.id = picked.id AND jobs.status IN ('failed', 'cancelled')
    RETURNING jobs.id, jobs.queue
)
SELECT id, conveyor_wake(queue, t.now) AS notified FROM requeued, t ORDER BY id
