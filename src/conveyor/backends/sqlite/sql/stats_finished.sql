SELECT queue, status, count(*) FROM conveyor_jobs
WHERE status IN ('completed', 'failed') AND finished_at IS NOT NULL AND finished_at >= ?
GROUP BY queue, status
