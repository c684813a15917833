//! The worker registry: who runs, where, which queues and step types.

use crate::interpret;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use workflow_core::store::WorkerInfo;
use workflow_core::{StoreError, WorkerId};

/// Records a worker process start.
pub(crate) async fn register(pool: &PgPool, w: WorkerInfo) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO wf.workers (id, host, pid, queues, step_types, concurrency) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(w.id.0)
    .bind(&w.host)
    .bind(w.pid as i32)
    .bind(&w.queues)
    .bind(&w.step_types)
    .bind(w.concurrency as i32)
    .execute(pool)
    .await
    .map_err(interpret)?;
    Ok(())
}

/// Marks a worker seen now, or stopped.
pub(crate) async fn touch(pool: &PgPool, id: WorkerId, stopped: bool) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE wf.workers SET last_seen_at = now(), stopped_at = CASE WHEN $2 THEN now() ELSE stopped_at END
         WHERE id = $1",
    )
    .bind(id.0)
    .bind(stopped)
    .execute(pool)
    .await
    .map_err(interpret)?;
    Ok(())
}

type WorkerRow =
    (Uuid, String, i32, Vec<String>, Vec<String>, i32, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);

/// Workers, most recently seen first.
pub(crate) async fn list(pool: &PgPool) -> Result<Vec<WorkerInfo>, StoreError> {
    let rows: Vec<WorkerRow> = sqlx::query_as(
        "SELECT id, host, pid, queues, step_types, concurrency, started_at, last_seen_at, stopped_at
         FROM wf.workers ORDER BY last_seen_at DESC, id LIMIT 1000",
    )
    .fetch_all(pool)
    .await
    .map_err(interpret)?;
    Ok(rows
        .into_iter()
        .map(|r| WorkerInfo {
            id: WorkerId(r.0),
            host: r.1,
            pid: r.2 as u32,
            queues: r.3,
            step_types: r.4,
            concurrency: r.5 as u32,
            started_at: Some(r.6),
            last_seen_at: Some(r.7),
            stopped_at: r.8,
        })
        .collect())
}
