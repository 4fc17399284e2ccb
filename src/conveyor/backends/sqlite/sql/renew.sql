UPDATE conveyor_jobs SET lease_expires_at = ?
WHERE id = ? AND status = 'running' AND lease_token = ?
RETURNING cancel_requested
