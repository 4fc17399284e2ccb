-- Complete a batch and claim new jobs in one call: see migrations/0003_hot_path.sql.
SELECT *
  FROM conveyor_complete_claim(%(now)s::timestamptz, %(completions)s::json, %(limit)s::integer,
                               %(worker)s::text, %(lease_for)s::interval, %(queues)s::text[])
