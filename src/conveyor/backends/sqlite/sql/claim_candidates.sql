SELECT * FROM (
    SELECT id, priority, run_at FROM conveyor_jobs
    WHERE queue = :queue_N
      AND status IN ('scheduled', 'queued', 'retrying')
      AND run_at <= :now
      AND NOT EXISTS (SELECT 1 FROM conveyor_queues WHERE queue = :queue_N AND paused = 1)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
