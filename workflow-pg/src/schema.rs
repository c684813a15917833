//! The embedded migrations (schema `wf`, history in `wf._migrations`, apart
//! from the pipelines' own) and the start-up version check.

use crate::interpret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use workflow_core::StoreError;

/// Where the engine's migration history lives.
pub const MIGRATIONS_TABLE: &str = "wf._migrations";

/// The engine's migrator.
pub fn migrator() -> Migrator {
    let mut m = sqlx::migrate!("../migrations");
    m.create_schema("wf");
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    migrator().iter().map(|m| m.version).max().unwrap_or(0)
}

/// Refuses a database whose schema is missing, older or newer than this binary.
pub async fn check(pool: &PgPool) -> Result<(), StoreError> {
    let known = latest_version();
    let found: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM wf._migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_err(interpret)?;
    match found {
        None => Err(StoreError::Schema("the database has no wf schema; run `wf migrate` first".into())),
        Some(v) if v > known => Err(StoreError::Schema(format!(
            "the database's wf schema is at version {v}, newer than this binary knows ({known}); upgrade wf"
        ))),
        Some(v) if v < known => Err(StoreError::Schema(format!(
            "the database's wf schema is at version {v}, older than this binary needs ({known}); run `wf migrate`"
        ))),
        Some(_) => Ok(()),
    }
}

/// Counts the steps whose rows in `wf.ready_queue` and `wf.leases` disagree
/// with their status, and queue or lease rows without a step: 0 in a
/// consistent database. A step has a queue row (with its queue, type and
/// `available_at`) exactly while it is ready, and a lease row exactly
/// while it is running.
pub async fn queue_mismatches(pool: &PgPool) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM wf.steps s
                 LEFT JOIN wf.ready_queue q ON q.step_id = s.id
                 LEFT JOIN wf.leases l ON l.step_id = s.id
                 WHERE (s.status = 'ready') <> (q.step_id IS NOT NULL)
                    OR (s.status = 'running') <> (l.step_id IS NOT NULL)
                    OR (q.step_id IS NOT NULL AND (q.queue, q.step_type, q.available_at)
                                              IS DISTINCT FROM (s.queue, s.step_type, s.available_at)))
              + (SELECT count(*) FROM wf.ready_queue q WHERE NOT EXISTS (SELECT 1 FROM wf.steps s WHERE s.id = q.step_id))
              + (SELECT count(*) FROM wf.leases l WHERE NOT EXISTS (SELECT 1 FROM wf.steps s WHERE s.id = l.step_id))",
    )
    .fetch_one(pool)
    .await
    .map_err(interpret)
}
