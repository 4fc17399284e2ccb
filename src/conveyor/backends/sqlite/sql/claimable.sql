-- Whether one queue has a job claimable now (wait_for_work's check after a wake-up hint).
SELECT 1 FROM conveyor_jobs
WHERE queue = ?1
  AND status IN ('scheduled', 'queued', 'retrying')
  AND run_at <= ?2
  AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE queue = ?1 AND paused = 1)
LIMIT 1
