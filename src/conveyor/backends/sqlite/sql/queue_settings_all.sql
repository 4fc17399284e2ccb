SELECT queue, paused, max_depth FROM conveyor_queues ORDER BY queue
