-- Claim: one UPDATE inside BEGIN IMMEDIATE, so no job is handed to two claimers, whatever
-- the number of processes. The candidates placeholder is claim_candidates.sql once per queue,
-- joined with UNION ALL: each part walks the claim index of one queue in order and stops
-- after :limit rows, so a claim costs O(limit * queues), not O(waiting jobs).
-- RETURNING order is unspecified; the caller sorts.
UPDATE conveyor_jobs
SET status = 'running',
    attempts = attempts + 1,
    started_at = :now,
    updated_at = :now,
    lease_owner = :owner,
    lease_token = lower(hex(randomblob(16))),
    lease_expires_at = :expires_at
WHERE id IN (
    SELECT id FROM (/*candidates*/)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING /*job_columns*/, lease_token
