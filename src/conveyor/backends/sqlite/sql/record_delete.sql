DELETE FROM conveyor_records WHERE namespace = ? AND key = ?
