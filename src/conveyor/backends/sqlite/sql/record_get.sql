SELECT namespace, key, value, version, updated_at FROM conveyor_records
WHERE namespace = ? AND key = ?
