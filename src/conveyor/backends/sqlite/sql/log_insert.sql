INSERT INTO conveyor_job_logs (job_id, seq, at, line) VALUES (?, ?, ?, ?)
