SELECT namespace, key, value, version, updated_at
  FROM conveyor_records
 WHERE namespace = %(namespace)s AND key = %(key)s
