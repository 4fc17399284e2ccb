SELECT * FROM workers
 WHERE last_seen_at >= coalesce(%(now)s::timestamptz, clock_timestamp()) - %(within)s::interval
 ORDER BY id
