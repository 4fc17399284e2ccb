-- Enqueue a batch in one round trip (see conveyor_enqueue in migrations/0001_init.sql).
SELECT e.ord, e.created, (e.job).*
  FROM conveyor_enqueue(%(now)s::timestamptz, %(jobs)s::json) AS e
 ORDER BY e.ord
