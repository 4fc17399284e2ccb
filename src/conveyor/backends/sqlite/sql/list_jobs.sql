-- Newest first; the filter placeholder is a conjunction built from a JobFilter and the cursor.
SELECT /*job_columns*/ FROM conveyor_jobs
WHERE /*filter*/
ORDER BY id DESC
LIMIT :limit
