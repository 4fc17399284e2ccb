SELECT queue, min(run_at) FROM conveyor_jobs
WHERE status IN ('scheduled', 'queued', 'retrying') AND run_at <= ?
GROUP BY queue
