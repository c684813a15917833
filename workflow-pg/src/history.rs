//! Reading a run's steps and its step history.

use crate::interpret;
use crate::steps::parse_status;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use workflow_core::store::{EventInfo, StepInfo};
use workflow_core::{RunId, StepId, StoreError, WorkerId};

type StepRow = (
    i64,
    String,
    String,
    String,
    String,
    i32,
    i32,
    Option<Uuid>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    Vec<String>,
);

/// A run's steps in plan order, fan-out children right after their parent.
pub(crate) async fn steps(pool: &PgPool, run: RunId) -> Result<Vec<StepInfo>, StoreError> {
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT s.id, s.name, s.step_type, s.queue, s.status::text, s.attempt, s.max_attempts, s.worker_id,
                s.lease_expires_at, s.available_at, s.started_at, s.finished_at, s.last_error,
                COALESCE((SELECT array_agg(u.name ORDER BY u.name) FROM wf.step_deps d
                          JOIN wf.steps u ON u.id = d.depends_on WHERE d.step_id = s.id), '{}')
         FROM wf.steps s WHERE s.run_id = $1
         ORDER BY COALESCE(s.parent_id, s.id), s.parent_id NULLS FIRST, s.id",
    )
    .bind(run.0)
    .fetch_all(pool)
    .await
    .map_err(interpret)?;
    rows.into_iter()
        .map(|r| {
            Ok(StepInfo {
                id: StepId(r.0),
                name: r.1,
                step_type: r.2,
                queue: r.3,
                status: parse_status(&r.4)?,
                attempts: r.5 as u32,
                max_attempts: r.6 as u32,
                worker_id: r.7.map(WorkerId),
                lease_expires_at: r.8,
                available_at: r.9,
                started_at: r.10,
                finished_at: r.11,
                last_error: r.12,
                after: r.13,
            })
        })
        .collect()
}

type EventRow = (
    i64,
    String,
    String,
    Option<String>,
    String,
    DateTime<Utc>,
    i32,
    Option<Uuid>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A run's history, oldest first; `NotFound` for an unknown step name.
pub(crate) async fn events(pool: &PgPool, run: RunId, step: Option<String>) -> Result<Vec<EventInfo>, StoreError> {
    if let Some(name) = &step {
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM wf.steps WHERE run_id = $1 AND name = $2")
            .bind(run.0)
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(interpret)?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("run {run} has no step named {name:?}")));
        }
    }
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT e.id, s.name, e.event, e.from_status::text, e.to_status::text, e.at, e.attempt, e.worker_id,
                e.lease_token, e.duration_ms, e.error, e.actor, e.reason
         FROM wf.step_events e JOIN wf.steps s ON s.id = e.step_id
         WHERE e.run_id = $1 AND ($2::text IS NULL OR s.name = $2)
         ORDER BY e.id",
    )
    .bind(run.0)
    .bind(&step)
    .fetch_all(pool)
    .await
    .map_err(interpret)?;
    rows.into_iter()
        .map(|r| {
            Ok(EventInfo {
                id: r.0,
                step: r.1,
                event: r.2,
                from_status: r.3.as_deref().map(parse_status).transpose()?,
                to_status: parse_status(&r.4)?,
                at: r.5,
                attempt: r.6 as u32,
                worker_id: r.7.map(WorkerId),
                lease_token: r.8,
                duration_ms: r.9,
                error: r.10,
                actor: r.11,
                reason: r.12,
            })
        })
        .collect()
}
