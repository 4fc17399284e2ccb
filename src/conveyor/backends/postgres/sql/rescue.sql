-- Rescue running jobs whose lease expired. SKIP LOCKED lets every worker run this at once.
WITH t AS MATERIALIZED (
    SELECT coalesce(%(now)s::timestamptz, clock_timestamp()) AS now
), expired AS (
    SELECT j.id
      FROM jobs j, t
     WHERE j.status = 'running' AND j.lease_expires_at < t.now
     ORDER BY j.lease_expires_at
     LIMIT %(limit)s
       FOR UPDATE OF j SKIP LOCKED
), rescued AS (
    UPDATE jobs
       SET rescues = jobs.rescues + 1,
           errors = jobs.errors || jsonb_build_array(jsonb_build_object(
               'attempt', jobs.attempts,
               'at', to_char(t.now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
               'type', 'conveyor.LeaseExpired',
               'message', 'the lease of ' || coalesce(jobs.lease_owner, 'a worker')
                          || ' expired',
               'traceback', NULL,
               'details', NULL)),
           status = CASE WHEN jobs.cancel_requested THEN 'cancelled'
                         WHEN jobs.attempts >= jobs.max_attempts
                              OR jobs.rescues + 1 > %(max_rescues)s THEN 'failed'
                         ELSE 'queued' END,
           run_at = CASE WHEN jobs.cancel_requested OR jobs.attempts >= jobs.max_attempts
                              OR jobs.rescues + 1 > %(max_rescues)s
                         THEN jobs.run_at ELSE t.now END,
           finished_at = CASE WHEN jobs.cancel_requested OR jobs.attempts >= jobs.max_attempts
                                   OR jobs.rescues + 1 > %(max_rescues)s
                              THEN t.now END,
           updated_at = t.now,
           lease_owner = NULL,
           lease_token = NULL,
           lease_expires_at = NULL
      FROM expired, t
     WHERE jobs.id = expired.id AND jobs.status = 'running'
    RETURNING jobs.id, jobs.queue, jobs.status
)
SELECT id, status, CASE WHEN status = 'queued' THEN conveyor_wake(queue, t.now) END AS notified
  FROM rescued, t
 ORDER BY id
