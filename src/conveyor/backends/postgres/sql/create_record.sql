-- put_record with expect_version = 0: create only if absent. No row back means the key
-- exists (also when a concurrent insert won the race): the caller raises RecordConflict.
INSERT INTO conveyor_records (namespace, key, value, version, updated_at)
VALUES (%(namespace)s, %(key)s, %(value)s::jsonb, 1,
        coalesce(%(now)s::timestamptz, clock_timestamp()))
ON CONFLICT (namespace, key) DO NOTHING
RETURNING namespace, key, value, version, updated_at
