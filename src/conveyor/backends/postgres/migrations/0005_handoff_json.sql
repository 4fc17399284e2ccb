-- Conveyor on PostgreSQL, version 5: conveyor_job_json in PL/pgSQL.
--
-- Migration 4 wrote it in SQL. A SQL function that is not inlined (it takes a whole row,
-- called from conveyor_handoff's PL/pgSQL) is parsed and planned again in every
-- transaction, and each enqueue that hands a job over is a transaction of its own: 121 µs
-- of the enqueue's server time, on the pickup's path (docs/performance.md, "Seventh pass").
-- PL/pgSQL keeps the plan of its expression for the session: 18 µs. Same arguments, same
-- text out (rows.py's job_from_handoff reads it).
CREATE OR REPLACE FUNCTION conveyor_job_json(j jobs) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN json_build_array(
        j.id, j.queue, j.kind, j.payload, j.status, j.priority,
        (extract(epoch FROM j.run_at) * 1000000)::bigint, j.attempts, j.max_attempts,
        (extract(epoch FROM j.timeout) * 1000000)::bigint, j.idempotency_key, j.lease_owner,
        (extract(epoch FROM j.lease_expires_at) * 1000000)::bigint,
        (extract(epoch FROM j.started_at) * 1000000)::bigint,
        (extract(epoch FROM j.finished_at) * 1000000)::bigint,
        j.result, j.errors, j.progress, j.trace, j.rescues, j.cancel_requested,
        (extract(epoch FROM j.created_at) * 1000000)::bigint,
        (extract(epoch FROM j.updated_at) * 1000000)::bigint)::text;
END
$$;
