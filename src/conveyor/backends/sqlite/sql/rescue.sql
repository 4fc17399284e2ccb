-- Expired leases: rescues += 1, a conveyor.LeaseExpired error appended, then cancelled,
-- failed (last attempt, or rescued more than :max_rescues times) or back to queued.
-- Every SET expression reads the row's old values.
UPDATE conveyor_jobs
SET rescues = rescues + 1,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempts,
        'at', :now_iso,
        'type', 'conveyor.LeaseExpired',
        'message', CASE
            WHEN cancel_requested = 0 AND attempts < max_attempts AND rescues + 1 > :max_rescues
            THEN 'lease of worker ' || coalesce(lease_owner, '?') || ' expired; rescued '
                 || (rescues + 1) || ' times, more than ' || :max_rescues || ': giving up'
            ELSE 'lease of worker ' || coalesce(lease_owner, '?') || ' expired' END,
        'traceback', NULL,
        'details', NULL)),
    status = CASE
        WHEN cancel_requested = 1 THEN 'cancelled'
        WHEN attempts >= max_attempts OR rescues + 1 > :max_rescues THEN 'failed'
        ELSE 'queued' END,
    run_at = CASE
        WHEN cancel_requested = 0 AND attempts < max_attempts AND rescues + 1 <= :max_rescues
        THEN :now ELSE run_at END,
    finished_at = CASE
        WHEN cancel_requested = 0 AND attempts < max_attempts AND rescues + 1 <= :max_rescues
        THEN NULL ELSE :now END,
    updated_at = :now,
    lease_owner = NULL,
    lease_token = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM conveyor_jobs
    WHERE status = 'running' AND lease_expires_at < :now
    ORDER BY lease_expires_at
    LIMIT :limit
)
RETURNING id, status
