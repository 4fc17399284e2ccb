SELECT namespace, key, value, version, updated_at
  FROM conveyor_records
 WHERE namespace = %(namespace)s
 ORDER BY key
