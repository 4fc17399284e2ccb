SELECT seq, at, line FROM job_logs
 WHERE job_id = %(id)s AND seq > %(after)s
 ORDER BY seq
 LIMIT %(limit)s
