//! Bulk fixtures for benchmarks and soak tests: many runs, or many idle or
//! finished steps, inserted set-wise in one statement each. Not for
//! production starts (use `Store::run_insert`, which validates the plan).

use crate::interpret;
use sqlx::PgConnection;
use workflow_core::StoreError;

/// Inserts `runs` runs of workflow `workflow`, each a chain of `chain`
/// steps of `step_type` with `definition` on `queue` (the first ready, the
/// others blocked on their predecessor), with their `created` events, and
/// wakes listening workers at commit as a real start does
/// ([`Store::run_insert`](workflow_core::Store::run_insert)): without it
/// they would find the runs only at their next poll.
pub async fn chains_insert(
    conn: &mut PgConnection,
    workflow: &str,
    runs: i64,
    chain: i32,
    step_type: &str,
    definition: &serde_json::Value,
    queue: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH r AS (
            INSERT INTO wf.runs (id, workflow, workflow_version, correlation_id, created_by, remaining)
            SELECT id, $1, 1, 'bench', 'bench', $3 FROM unnest($7::uuid[]) WITH ORDINALITY AS t(id, n)
            ORDER BY n
            RETURNING id
         ), s AS (
            INSERT INTO wf.steps (run_id, name, step_type, definition, queue, trigger, status, pending_deps, n_deps,
                                  max_attempts, policy_attempts, backoff_ms, backoff_max_ms)
            SELECT r.id, 't' || k, $4, $5, $6, 'all_succeeded',
                   CASE WHEN k = 0 THEN 'ready' ELSE 'blocked' END::wf.step_state,
                   (k > 0)::int, (k > 0)::int, 3, 3, 100, 1000
            FROM r CROSS JOIN generate_series(0, $3 - 1) AS k
            RETURNING id, run_id, name, status, queue, step_type, available_at
         ), q AS (
            INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
            SELECT id, queue, step_type, available_at FROM s WHERE status = 'ready'
         ), d AS (
            INSERT INTO wf.step_deps (step_id, depends_on)
            SELECT b.id, a.id FROM s a JOIN s b
              ON a.run_id = b.run_id AND substr(b.name, 2)::int = substr(a.name, 2)::int + 1
         )
         INSERT INTO wf.step_events (run_id, step_id, event, to_status, attempt)
         SELECT run_id, id, 'created', status, 0 FROM s",
    )
    .bind(workflow)
    .bind(runs)
    .bind(chain)
    .bind(step_type)
    .bind(definition)
    .bind(queue)
    .bind((0..runs).map(|_| workflow_core::RunId::new().0).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(interpret)?;
    crate::steps::notify(conn).await
}

/// Adds `n` ready steps on `queue` (which no worker serves) and `finished`
/// succeeded steps with three history events each, in one extra run, so a
/// benchmark can show that claim cost does not grow with queue or history.
pub async fn ballast_insert(conn: &mut PgConnection, queue: &str, n: i64, finished: i64) -> Result<(), StoreError> {
    sqlx::query(
        "WITH r AS (
            INSERT INTO wf.runs (id, workflow, workflow_version, correlation_id, created_by, remaining)
            VALUES ($4, 'ballast', 1, 'ballast', 'bench', $2) RETURNING id
         ), s AS (
            INSERT INTO wf.steps (run_id, name, step_type, definition, queue, trigger, status,
                                  max_attempts, policy_attempts, backoff_ms, backoff_max_ms, attempt, lease_token,
                                  started_at, finished_at, output)
            SELECT r.id, 'b' || k, 'ballast.idle', '{\"type\":\"ballast.idle\"}', $1, 'all_succeeded',
                   CASE WHEN k < $2 THEN 'ready' ELSE 'succeeded' END::wf.step_state,
                   3, 3, 100, 1000,
                   CASE WHEN k < $2 THEN 0 ELSE 1 END, CASE WHEN k < $2 THEN 0 ELSE 1 END,
                   CASE WHEN k < $2 THEN NULL ELSE now() END, CASE WHEN k < $2 THEN NULL ELSE now() END,
                   CASE WHEN k < $2 THEN NULL ELSE 'null'::jsonb END
            FROM r CROSS JOIN generate_series(0, $2 + $3 - 1) AS k
            RETURNING id, run_id, status, queue, step_type, available_at
         ), q AS (
            INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
            SELECT id, queue, step_type, available_at FROM s WHERE status = 'ready'
         )
         INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt)
         SELECT run_id, id, e.event, e.from_status::wf.step_state, e.to_status::wf.step_state, 1
         FROM s CROSS JOIN (VALUES ('created', NULL, 'ready'), ('claimed', 'ready', 'running'),
                                   ('succeeded', 'running', 'succeeded')) AS e(event, from_status, to_status)
         WHERE s.status = 'succeeded' OR e.event = 'created'",
    )
    .bind(queue)
    .bind(n)
    .bind(finished)
    .bind(workflow_core::RunId::new().0)
    .execute(&mut *conn)
    .await
    .map_err(interpret)?;
    Ok(())
}
