SELECT seq, at, line FROM conveyor_job_logs
WHERE job_id = ? AND seq > ?
ORDER BY seq
LIMIT ?
