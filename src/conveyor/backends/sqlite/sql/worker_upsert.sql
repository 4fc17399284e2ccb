INSERT INTO conveyor_workers (
    id, host, pid, queues, kinds, concurrency, running, started_at, last_seen_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    host = excluded.host,
    pid = excluded.pid,
    queues = excluded.queues,
    kinds = excluded.kinds,
    concurrency = excluded.concurrency,
    running = excluded.running,
    started_at = excluded.started_at,
    last_seen_at = excluded.last_seen_at
