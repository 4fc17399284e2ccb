SELECT coalesce(max(seq), 0) FROM conveyor_job_logs WHERE job_id = ?
