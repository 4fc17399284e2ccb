UPDATE conveyor_jobs SET progress = ?, updated_at = ?
WHERE id = ? AND status = 'running' AND lease_token = ?
