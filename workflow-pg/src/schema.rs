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
