SELECT queue, max_depth FROM conveyor_queues
WHERE max_depth IS NOT NULL AND queue IN (SELECT value FROM json_each(?))
