SELECT /*job_columns*/ FROM conveyor_jobs WHERE id = ?
