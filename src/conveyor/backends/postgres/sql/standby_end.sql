-- Withdraw standing claim %(token)s; returns the job handed to it meanwhile, if any (still
-- running under the handed lease %(lease)s). See conveyor_standby_end in 0004_handoff.sql.
SELECT * FROM conveyor_standby_end(%(token)s::text, %(lease)s::text)
