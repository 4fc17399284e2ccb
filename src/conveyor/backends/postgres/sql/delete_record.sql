DELETE FROM conveyor_records
 WHERE namespace = %(namespace)s AND key = %(key)s
RETURNING key
