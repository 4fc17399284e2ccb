INSERT INTO conveyor_queues (queue, paused, max_depth) VALUES (?, ?, ?)
ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, max_depth = excluded.max_depth
