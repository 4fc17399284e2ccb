-- Log lines go with their job (ON DELETE CASCADE; foreign keys are on).
DELETE FROM conveyor_jobs WHERE id IN (
    SELECT id FROM conveyor_jobs
    WHERE status = ? AND finished_at IS NOT NULL AND finished_at < ?
    LIMIT ?
)
