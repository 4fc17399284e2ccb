-- complete_claim.sql, leaving a standing claim when fewer than the limit come back (see
-- migrations/0004_handoff.sql).
SELECT *
  FROM conveyor_complete_claim(%(now)s::timestamptz, %(completions)s::json, %(limit)s::integer,
                               %(worker)s::text, %(lease_for)s::interval, %(queues)s::text[],
                               %(standby)s::text, %(channel)s::text, %(standby_for)s::interval)
