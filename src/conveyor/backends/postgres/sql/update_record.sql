-- put_record with expect_version = n >= 1: the row lock taken by UPDATE re-checks the
-- version after a concurrent writer commits, so exactly one of two racing writers wins.
UPDATE conveyor_records
   SET value = %(value)s::jsonb,
       version = version + 1,
       updated_at = coalesce(%(now)s::timestamptz, clock_timestamp())
 WHERE namespace = %(namespace)s AND key = %(key)s AND version = %(expect_version)s
RETURNING namespace, key, value, version, updated_at
