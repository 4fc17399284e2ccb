SELECT id, host, pid, queues, kinds, concurrency, running, started_at, last_seen_at
FROM conveyor_workers
WHERE last_seen_at >= ?
ORDER BY id
