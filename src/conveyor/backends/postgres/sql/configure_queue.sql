INSERT INTO queues (name, paused, max_depth, updated_at)
VALUES (%(name)s, %(paused)s, %(max_depth)s, coalesce(%(now)s::timestamptz, clock_timestamp()))
ON CONFLICT (name) DO UPDATE
   SET paused = excluded.paused, max_depth = excluded.max_depth, updated_at = excluded.updated_at
RETURNING name, paused, max_depth
