-- put_record with expect_version = None: unconditional; a new row starts at version 1.
INSERT INTO conveyor_records AS r (namespace, key, value, version, updated_at)
VALUES (%(namespace)s, %(key)s, %(value)s::jsonb, 1,
        coalesce(%(now)s::timestamptz, clock_timestamp()))
ON CONFLICT (namespace, key) DO UPDATE
   SET value = EXCLUDED.value,
       version = r.version + 1,
       updated_at = EXCLUDED.updated_at
RETURNING namespace, key, value, version, updated_at
