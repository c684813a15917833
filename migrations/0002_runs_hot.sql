-- A run's row is no longer updated when its first step is claimed: only
-- when its steps end. Then `started_at` (the first claim) is stamped from
-- the history; until then readers take it from there. With half of every
-- page free, the updates that remain stay on the page (HOT: none of the
-- four indexes on wf.runs changes); with full pages most of them moved the
-- row and wrote four index entries each.
ALTER TABLE wf.runs SET (fillfactor = 50);

CREATE OR REPLACE VIEW wf.run_status AS
SELECT r.id,
       r.workflow,
       r.workflow_version,
       r.status,
       r.correlation_id,
       r.idempotency_key,
       r.created_by,
       c.total AS steps_total,
       c.blocked, c.ready, c.running, c.succeeded, c.failed, c.upstream_failed, c.cancelled, c.skipped,
       r.created_at,
       st.started_at,
       r.finished_at,
       COALESCE(r.finished_at, now()) - COALESCE(st.started_at, r.created_at) AS duration,
       r.deadline,
       r.deadline IS NOT NULL AND COALESCE(r.finished_at, now()) > r.deadline AS late
FROM wf.runs r
CROSS JOIN LATERAL (
    SELECT COALESCE(r.started_at, (SELECT min(e.at) FROM wf.step_events e
                                   WHERE e.run_id = r.id AND e.event = 'claimed')) AS started_at
) st
CROSS JOIN LATERAL (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE s.status = 'blocked') AS blocked,
           count(*) FILTER (WHERE s.status = 'ready') AS ready,
           count(*) FILTER (WHERE s.status = 'running') AS running,
           count(*) FILTER (WHERE s.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE s.status = 'failed') AS failed,
           count(*) FILTER (WHERE s.status = 'upstream_failed') AS upstream_failed,
           count(*) FILTER (WHERE s.status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE s.status = 'skipped') AS skipped
    FROM wf.steps s WHERE s.run_id = r.id
) c;

