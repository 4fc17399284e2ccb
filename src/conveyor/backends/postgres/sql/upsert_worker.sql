INSERT INTO workers (id, host, pid, queues, kinds, concurrency, running, started_at, last_seen_at)
VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s::text[], %(kinds)s::text[], %(concurrency)s,
        %(running)s, %(started_at)s, coalesce(%(now)s::timestamptz, clock_timestamp()))
ON CONFLICT (id) DO UPDATE
   SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
       kinds = excluded.kinds, concurrency = excluded.concurrency,
       running = excluded.running, started_at = excluded.started_at,
       last_seen_at = excluded.last_seen_at
