-- One page of jobs, newest first; every filter is optional (NULL = any).
SELECT *
  FROM jobs
 WHERE (%(cursor)s::uuid IS NULL OR id < %(cursor)s::uuid)
   AND (%(statuses)s::text[] IS NULL OR status = ANY (%(statuses)s::text[]))
   AND (%(queues)s::text[] IS NULL OR queue = ANY (%(queues)s::text[]))
   AND (%(kinds)s::text[] IS NULL OR kind = ANY (%(kinds)s::text[]))
   AND (%(ids)s::uuid[] IS NULL OR id = ANY (%(ids)s::uuid[]))
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s::timestamptz)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s::timestamptz)
 ORDER BY id DESC
 LIMIT %(limit)s
