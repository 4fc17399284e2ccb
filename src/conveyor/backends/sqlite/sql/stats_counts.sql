SELECT queue, status, count(*) FROM conveyor_jobs GROUP BY queue, status
