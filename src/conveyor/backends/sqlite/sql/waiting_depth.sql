-- Waiting jobs of one queue, counted on the claim index.
SELECT count(*) FROM conveyor_jobs
WHERE queue = ? AND status IN ('scheduled', 'queued', 'retrying')
