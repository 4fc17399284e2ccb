SELECT 1 FROM conveyor_jobs WHERE id = ?
