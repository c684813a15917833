-- wf engine schema. Steps are updated often: few, partial indexes, and a
-- fillfactor that leaves room for HOT heartbeat updates (a heartbeat touches
-- only lease_expires_at, which no index covers).

CREATE TYPE wf.step_state AS ENUM
    ('blocked', 'ready', 'running', 'succeeded', 'failed', 'upstream_failed', 'cancelled', 'skipped');
CREATE TYPE wf.run_state AS ENUM ('running', 'succeeded', 'failed', 'cancelled');
CREATE TYPE wf.trigger_rule AS ENUM ('all_succeeded', 'all_done');

CREATE TABLE wf.runs (
    id               uuid PRIMARY KEY,
    workflow         text NOT NULL,
    workflow_version int NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}',
    status           wf.run_state NOT NULL DEFAULT 'running',
    correlation_id   text NOT NULL,
    idempotency_key  text,
    deadline         timestamptz,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    -- Steps not yet ended, ended steps that failed or are upstream-failed, and
    -- cancelled steps: the run's status is derived from these counters, never
    -- by scanning steps.
    remaining        int NOT NULL CHECK (remaining >= 0),
    failed_steps     int NOT NULL DEFAULT 0 CHECK (failed_steps >= 0),
    cancelled_steps  int NOT NULL DEFAULT 0 CHECK (cancelled_steps >= 0),
    UNIQUE (workflow, idempotency_key),
    CHECK ((status = 'running') = (finished_at IS NULL)),
    CHECK (status <> 'succeeded' OR (remaining = 0 AND failed_steps = 0))
);
CREATE INDEX runs_created_at ON wf.runs (created_at);
CREATE INDEX runs_correlation_id ON wf.runs (correlation_id);

CREATE TABLE wf.steps (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           uuid NOT NULL REFERENCES wf.runs (id) ON DELETE CASCADE,
    name             text NOT NULL,
    parent_id        bigint,
    step_type        text NOT NULL,
    definition       jsonb NOT NULL,
    queue            text NOT NULL,
    trigger          wf.trigger_rule NOT NULL,
    status           wf.step_state NOT NULL,
    -- Upstreams not yet ended (fan-in by counter), and upstreams that ended
    -- without success (decides upstream_failed for all_succeeded steps).
    pending_deps     int NOT NULL DEFAULT 0 CHECK (pending_deps >= 0),
    failed_deps      int NOT NULL DEFAULT 0 CHECK (failed_deps >= 0),
    attempt          int NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- max_attempts is the current budget; an operator retry adds policy_attempts to it.
    max_attempts     int NOT NULL CHECK (max_attempts >= 1),
    policy_attempts  int NOT NULL CHECK (policy_attempts >= 1),
    n_deps           int NOT NULL DEFAULT 0,
    timeout_ms       bigint,
    backoff_ms       bigint NOT NULL,
    backoff_max_ms   bigint NOT NULL,
    -- Fencing: grows with every claim; results are recorded only under the
    -- token of the current lease.
    lease_token      bigint NOT NULL DEFAULT 0,
    worker_id        uuid,
    lease_expires_at timestamptz,
    available_at     timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    output           jsonb,
    last_error       text,
    UNIQUE (run_id, name),
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK (status <> 'running' OR worker_id IS NOT NULL),
    CHECK (status <> 'ready' OR pending_deps = 0)
) WITH (fillfactor = 70);

-- Claim: ready steps of one queue in order of availability (the claim
-- walks this index and stops at its limit, whatever waits in other queues).
CREATE INDEX steps_ready ON wf.steps (queue, available_at, id) WHERE status = 'ready';
-- Rescue and heartbeats: running steps, by a column that does not change
-- during a lease.
CREATE INDEX steps_running ON wf.steps (worker_id) WHERE status = 'running';

CREATE TABLE wf.step_deps (
    step_id     bigint NOT NULL REFERENCES wf.steps (id) ON DELETE CASCADE,
    depends_on  bigint NOT NULL REFERENCES wf.steps (id) ON DELETE CASCADE,
    PRIMARY KEY (step_id, depends_on),
    CHECK (step_id <> depends_on)
);
CREATE INDEX step_deps_depends_on ON wf.step_deps (depends_on);

-- Append-only history of every transition: the engine's audit trail.
CREATE TABLE wf.step_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       uuid NOT NULL,
    step_id      bigint NOT NULL,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    event        text NOT NULL,
    from_status  wf.step_state,
    to_status    wf.step_state NOT NULL,
    attempt      int NOT NULL,
    worker_id    uuid,
    lease_token  bigint,
    duration_ms  bigint,
    error        text,
    actor        text,
    reason       text
);
CREATE INDEX step_events_run ON wf.step_events (run_id, id);

CREATE FUNCTION wf.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wf.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER step_events_append_only BEFORE UPDATE OR DELETE ON wf.step_events
    FOR EACH ROW EXECUTE FUNCTION wf.refuse_change();
CREATE TRIGGER step_events_no_truncate BEFORE TRUNCATE ON wf.step_events
    FOR EACH STATEMENT EXECUTE FUNCTION wf.refuse_change();

CREATE TABLE wf.workers (
    id           uuid PRIMARY KEY,
    host         text NOT NULL,
    pid          int NOT NULL,
    queues       text[] NOT NULL,
    step_types   text[] NOT NULL,
    concurrency  int NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);

-- Ops views: a public, documented interface (docs/ops.md).
CREATE VIEW wf.run_status AS
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
       r.started_at,
       r.finished_at,
       COALESCE(r.finished_at, now()) - COALESCE(r.started_at, r.created_at) AS duration,
       r.deadline,
       r.deadline IS NOT NULL AND COALESCE(r.finished_at, now()) > r.deadline AS late
FROM wf.runs r
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

CREATE VIEW wf.step_history AS
SELECT e.id AS event_id,
       e.run_id,
       r.workflow,
       s.name AS step,
       s.step_type,
       e.event,
       e.from_status,
       e.to_status,
       e.attempt,
       e.worker_id,
       e.lease_token,
       e.at,
       e.duration_ms * interval '1 millisecond' AS duration,
       e.error,
       e.actor,
       e.reason
FROM wf.step_events e
JOIN wf.steps s ON s.id = e.step_id
JOIN wf.runs r ON r.id = e.run_id;
