//! Runs: starting one (the whole plan in one transaction), reading them,
//! and the operator actions (resume, cancel, retry, skip), each recorded in
//! the history with the OS user and reason.

use crate::interpret;
use crate::steps::{insert_steps, notify, with_tx};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;
use workflow_core::store::*;
use workflow_core::{Params, RunId, RunState, StoreError};

/// Persists a run's plan, or returns the run that already has its
/// idempotency key.
pub(crate) async fn insert(conn: &mut PgConnection, p: RunInsert) -> Result<RunInserted, StoreError> {
    if p.steps.is_empty() {
        return Err(StoreError::Conflict("a run needs at least one step".into()));
    }
    let id = RunId::new().0;
    let correlation = p.correlation_id.clone().unwrap_or_else(|| id.to_string());
    let params = serde_json::to_value(&p.params).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let inserted: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO wf.runs (id, workflow, workflow_version, params, correlation_id, idempotency_key, deadline,
                              created_by, remaining)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (workflow, idempotency_key) DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(&p.workflow)
    .bind(p.version as i32)
    .bind(&params)
    .bind(&correlation)
    .bind(&p.idempotency_key)
    .bind(p.deadline)
    .bind(&p.created_by)
    .bind(p.steps.len() as i32)
    .fetch_optional(&mut *conn)
    .await
    .map_err(interpret)?;
    if inserted.is_none() {
        let (existing,): (Uuid,) =
            sqlx::query_as("SELECT id FROM wf.runs WHERE workflow = $1 AND idempotency_key = $2")
                .bind(&p.workflow)
                .bind(&p.idempotency_key)
                .fetch_one(&mut *conn)
                .await
                .map_err(interpret)?;
        return Ok(RunInserted { id: RunId(existing), created: false });
    }
    insert_steps(conn, id, None, &p.steps).await?;
    notify(conn).await?;
    Ok(RunInserted { id: RunId(id), created: true })
}

const RUN_COLUMNS: &str = "r.id, r.workflow, r.workflow_version, r.status::text, r.correlation_id, r.idempotency_key,
    r.params, r.created_by, r.created_at,
    COALESCE(r.started_at, (SELECT min(e.at) FROM wf.step_events e WHERE e.run_id = r.id AND e.event = 'claimed')),
    r.finished_at, r.deadline,
    (SELECT jsonb_object_agg(status, n) FROM (SELECT status::text, count(*) AS n FROM wf.steps s
        WHERE s.run_id = r.id GROUP BY status) c)";

type RunRow = (
    Uuid,
    String,
    i32,
    String,
    String,
    Option<String>,
    serde_json::Value,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<serde_json::Value>,
);

fn run_info(r: RunRow) -> Result<RunInfo, StoreError> {
    let status = RunState::parse(&r.3).ok_or_else(|| StoreError::Corrupt(format!("run status {:?}", r.3)))?;
    let params: Params = serde_json::from_value(r.6).map_err(|e| StoreError::Corrupt(format!("run params: {e}")))?;
    let step_counts: BTreeMap<String, i64> = r.12.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    Ok(RunInfo {
        id: RunId(r.0),
        workflow: r.1,
        workflow_version: r.2 as u32,
        status,
        correlation_id: r.4,
        idempotency_key: r.5,
        params,
        created_by: r.7,
        created_at: r.8,
        started_at: r.9,
        finished_at: r.10,
        deadline: r.11,
        step_counts,
    })
}

/// One run, or `NotFound` naming the id.
pub(crate) async fn get(pool: &PgPool, id: RunId) -> Result<RunInfo, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM wf.runs r WHERE r.id = $1");
    let row: Option<RunRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(pool).await.map_err(interpret)?;
    run_info(row.ok_or_else(|| StoreError::NotFound(format!("no run with id {id}")))?)
}

/// Runs, newest first.
pub(crate) async fn list(pool: &PgPool, f: RunsFilter) -> Result<Vec<RunInfo>, StoreError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM wf.runs r
         WHERE ($1::text IS NULL OR r.status::text = $1)
           AND ($2::text IS NULL OR r.workflow = $2)
           AND ($3::text IS NULL OR r.correlation_id = $3)
           AND ($4::timestamptz IS NULL OR r.created_at >= $4)
         ORDER BY r.created_at DESC, r.id LIMIT $5"
    );
    let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(f.status.map(RunState::as_str))
        .bind(&f.workflow)
        .bind(&f.correlation_id)
        .bind(f.since)
        .bind(i64::from(f.limit.max(1)))
        .fetch_all(pool)
        .await
        .map_err(interpret)?;
    rows.into_iter().map(run_info).collect()
}

/// Locks the run and returns its status, or `NotFound`. Also locks the
/// run's rows in the ready queue, waiting for claims that hold some: a claim
/// locks a queue row before its step, and an operator action that locked a
/// step first and then its queue row could deadlock with it.
async fn lock_run(conn: &mut PgConnection, run: RunId) -> Result<RunState, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT status::text FROM wf.runs WHERE id = $1 FOR UPDATE")
        .bind(run.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(interpret)?;
    let (s,) = row.ok_or_else(|| StoreError::NotFound(format!("no run with id {run}")))?;
    sqlx::query(
        "SELECT q.step_id FROM wf.ready_queue q
         WHERE q.step_id = ANY(ARRAY(SELECT id FROM wf.steps WHERE run_id = $1)) ORDER BY q.step_id FOR UPDATE",
    )
    .bind(run.0)
    .execute(&mut *conn)
    .await
    .map_err(interpret)?;
    RunState::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("run status {s:?}")))
}

/// Locks one step of the run by name and returns its id and status.
async fn lock_step(conn: &mut PgConnection, run: RunId, name: &str) -> Result<(i64, String), StoreError> {
    sqlx::query_as("SELECT id, status::text FROM wf.steps WHERE run_id = $1 AND name = $2 FOR UPDATE")
        .bind(run.0)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(interpret)?
        .ok_or_else(|| StoreError::NotFound(format!("run {run} has no step named {name:?}")))
}

/// Moves the given steps (and, by status, only those allowed) to `to`,
/// recording an operator event for each. Returns how many moved.
async fn operator_move(
    conn: &mut PgConnection,
    p: &OperatorAction,
    ids: &[i64],
    from: &[&str],
    event: &str,
    to: &str,
) -> Result<usize, StoreError> {
    let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
    let rows: Vec<(i64,)> = sqlx::query_as(
        "WITH old AS MATERIALIZED (
            SELECT id, status FROM wf.steps
            WHERE id = ANY($1) AND status::text = ANY($2) ORDER BY id FOR UPDATE
         ), upd AS (
            UPDATE wf.steps s
            SET status = $4::wf.step_state,
                lease_expires_at = NULL,
                available_at = now(),
                -- An operator retry grants a fresh budget of attempts.
                max_attempts = CASE WHEN $3 IN ('resumed', 'retried') THEN s.attempt + s.policy_attempts
                                    ELSE s.max_attempts END,
                finished_at = CASE WHEN $4 IN ('cancelled', 'skipped') THEN clock_timestamp() END
            FROM old WHERE s.id = old.id
            RETURNING s.id, s.run_id, s.attempt, s.worker_id, s.lease_token, old.status AS from_status, s.status,
                      s.queue, s.step_type, s.available_at
         ), unqueued AS (
            DELETE FROM wf.ready_queue q WHERE q.step_id = ANY(ARRAY(SELECT id FROM upd WHERE from_status = 'ready'))
         ), unleased AS (
            DELETE FROM wf.leases l WHERE l.step_id = ANY(ARRAY(SELECT id FROM upd WHERE from_status = 'running'))
         ), queued AS (
            -- No operator move starts from ready and ends there.
            INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
            SELECT id, queue, step_type, available_at FROM upd WHERE status = 'ready'
         ), ev AS (
            INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt, worker_id, lease_token, actor, reason)
            SELECT run_id, id, $3, from_status, status, attempt, worker_id, lease_token, $5, $6 FROM upd
         )
         SELECT id FROM upd",
    )
    .bind(ids)
    .bind(&from)
    .bind(event)
    .bind(to)
    .bind(&p.actor)
    .bind(&p.reason)
    .fetch_all(&mut *conn)
    .await
    .map_err(interpret)?;
    Ok(rows.len())
}

/// After an operator changed statuses: recounts every waiting step's
/// counters from its upstreams, reopens upstream-failed steps whose failed
/// upstreams are gone, promotes steps whose upstreams are all done, marks
/// newly doomed steps upstream-failed, and recomputes the run's counters.
async fn settle_run(conn: &mut PgConnection, p: &OperatorAction) -> Result<usize, StoreError> {
    let run = p.run.0;
    let mut moved = 0;
    loop {
        sqlx::query(
            "UPDATE wf.steps s
             SET pending_deps = c.pending, failed_deps = c.failed
             FROM (SELECT d.step_id,
                          (count(*) FILTER (WHERE u.status IN ('blocked', 'ready', 'running')))::int AS pending,
                          (count(*) FILTER (WHERE u.status IN ('failed', 'upstream_failed', 'cancelled')))::int AS failed
                   FROM wf.step_deps d
                   JOIN wf.steps w ON w.id = d.step_id
                   JOIN wf.steps u ON u.id = d.depends_on
                   WHERE w.run_id = $1 AND w.status IN ('blocked', 'upstream_failed')
                   GROUP BY d.step_id) c
             WHERE s.id = c.step_id",
        )
        .bind(run)
        .execute(&mut *conn)
        .await
        .map_err(interpret)?;
        let reopen: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM wf.steps WHERE run_id = $1 AND status = 'upstream_failed'
               AND (failed_deps = 0 OR trigger = 'all_done')",
        )
        .bind(run)
        .fetch_all(&mut *conn)
        .await
        .map_err(interpret)?;
        if reopen.is_empty() {
            break;
        }
        let ids: Vec<i64> = reopen.into_iter().map(|r| r.0).collect();
        moved += operator_move(conn, p, &ids, &["upstream_failed"], "resumed", "blocked").await?;
    }
    // Promote or doom blocked steps whose upstreams have all ended.
    sqlx::query(
        "WITH upd AS (
            UPDATE wf.steps
            SET status = CASE WHEN trigger = 'all_succeeded' AND failed_deps > 0 THEN 'upstream_failed'
                              ELSE 'ready' END::wf.step_state,
                available_at = now(),
                finished_at = CASE WHEN trigger = 'all_succeeded' AND failed_deps > 0 THEN clock_timestamp() END
            WHERE run_id = $1 AND status = 'blocked'
              AND (pending_deps = 0 OR (trigger = 'all_succeeded' AND failed_deps > 0))
            RETURNING id, run_id, status, attempt, queue, step_type, available_at
         ), queued AS (
            INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
            SELECT id, queue, step_type, available_at FROM upd WHERE status = 'ready'
         )
         INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt)
         SELECT run_id, id, CASE WHEN status = 'ready' THEN 'deps_met' ELSE 'upstream_failed' END, 'blocked', status, attempt
         FROM upd",
    )
    .bind(run)
    .execute(&mut *conn)
    .await
    .map_err(interpret)?;
    sqlx::query(
        "UPDATE wf.runs r
         SET remaining = c.remaining, failed_steps = c.failed, cancelled_steps = c.cancelled,
             status = CASE WHEN c.remaining > 0 THEN 'running'
                           WHEN c.cancelled > 0 THEN 'cancelled'
                           WHEN c.failed > 0 THEN 'failed'
                           ELSE 'succeeded' END::wf.run_state,
             finished_at = CASE WHEN c.remaining > 0 THEN NULL ELSE COALESCE(r.finished_at, clock_timestamp()) END
         FROM (SELECT (count(*) FILTER (WHERE status IN ('blocked', 'ready', 'running')))::int AS remaining,
                      (count(*) FILTER (WHERE status IN ('failed', 'upstream_failed')))::int AS failed,
                      (count(*) FILTER (WHERE status = 'cancelled'))::int AS cancelled
               FROM wf.steps WHERE run_id = $1) c
         WHERE r.id = $1",
    )
    .bind(run)
    .execute(&mut *conn)
    .await
    .map_err(interpret)?;
    notify(conn).await?;
    Ok(moved)
}

/// Failed and cancelled steps back to ready (or blocked), their
/// upstream-failed dependents back to blocked, the run back to running.
pub(crate) async fn resume(pool: &PgPool, p: OperatorAction) -> Result<usize, StoreError> {
    with_tx(pool, |conn| {
        let p = p.clone();
        Box::pin(async move {
            lock_run(conn, p.run).await?;
            let ids: Vec<(i64,)> = sqlx::query_as(
                "SELECT id FROM wf.steps WHERE run_id = $1 AND status IN ('failed', 'cancelled', 'upstream_failed')",
            )
            .bind(p.run.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(interpret)?;
            if ids.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "run {} has no failed, cancelled or upstream-failed step to resume",
                    p.run
                )));
            }
            let ids: Vec<i64> = ids.into_iter().map(|r| r.0).collect();
            let mut n = operator_move(conn, &p, &ids, &["failed"], "resumed", "ready").await?;
            n += operator_move(conn, &p, &ids, &["cancelled", "upstream_failed"], "resumed", "blocked").await?;
            settle_run(conn, &p).await?;
            Ok(n)
        })
    })
    .await
}

/// Cancels every unfinished step and the run.
pub(crate) async fn cancel(pool: &PgPool, p: OperatorAction) -> Result<usize, StoreError> {
    with_tx(pool, |conn| {
        let p = p.clone();
        Box::pin(async move {
            let status = lock_run(conn, p.run).await?;
            if status != RunState::Running {
                return Err(StoreError::Conflict(format!("run {} is already {status}", p.run)));
            }
            let ids: Vec<(i64,)> = sqlx::query_as(
                "SELECT id FROM wf.steps WHERE run_id = $1 AND status IN ('blocked', 'ready', 'running')",
            )
            .bind(p.run.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(interpret)?;
            let ids: Vec<i64> = ids.into_iter().map(|r| r.0).collect();
            let n = operator_move(conn, &p, &ids, &["blocked", "ready", "running"], "cancelled", "cancelled").await?;
            sqlx::query(
                "UPDATE wf.runs SET status = 'cancelled', remaining = 0, cancelled_steps = cancelled_steps + $2,
                        finished_at = clock_timestamp() WHERE id = $1",
            )
            .bind(p.run.0)
            .bind(n as i32)
            .execute(&mut *conn)
            .await
            .map_err(interpret)?;
            Ok(n)
        })
    })
    .await
}

/// One failed or cancelled step back to ready.
pub(crate) async fn retry_step(pool: &PgPool, p: OperatorAction) -> Result<usize, StoreError> {
    with_tx(pool, |conn| {
        let p = p.clone();
        Box::pin(async move {
            lock_run(conn, p.run).await?;
            let name = p.step.clone().unwrap_or_default();
            let (id, status) = lock_step(conn, p.run, &name).await?;
            let n = match status.as_str() {
                "failed" => operator_move(conn, &p, &[id], &["failed"], "retried", "ready").await?,
                "cancelled" => operator_move(conn, &p, &[id], &["cancelled"], "retried", "blocked").await?,
                other => {
                    return Err(StoreError::Conflict(format!(
                        "step {name:?} is {other}: only a failed or cancelled step can be retried"
                    )));
                }
            };
            settle_run(conn, &p).await?;
            Ok(n)
        })
    })
    .await
}

/// Marks a step skipped (done for its dependents). Needs a reason.
pub(crate) async fn skip_step(pool: &PgPool, p: OperatorAction) -> Result<usize, StoreError> {
    if p.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(StoreError::Conflict("skipping a step needs a reason".into()));
    }
    with_tx(pool, |conn| {
        let p = p.clone();
        Box::pin(async move {
            lock_run(conn, p.run).await?;
            let name = p.step.clone().unwrap_or_default();
            let (id, status) = lock_step(conn, p.run, &name).await?;
            let allowed = ["blocked", "ready", "failed", "upstream_failed"];
            if !allowed.contains(&status.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "step {name:?} is {status}: only a blocked, ready, failed or upstream-failed step can be skipped"
                )));
            }
            let n = operator_move(conn, &p, &[id], &allowed, "skipped", "skipped").await?;
            settle_run(conn, &p).await?;
            Ok(n)
        })
    })
    .await
}
