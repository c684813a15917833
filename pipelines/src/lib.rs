//! The daily transactions ETL: per-feed branches that land, parse,
//! transform, validate and load upstream bank files into the reporting
//! warehouse, with a hash-chained, append-only audit lineage per record.
//!
//! * [`config`]: the feeds config (TOML) and the business window.
//! * [`workflow`]: the `daily_transactions` workflow and its parameters.
//! * [`land`], [`parse`]: landing files by sha256; parsing in chunks into staging.
//! * [`transform`]: canonical rows and validation (quarantine).
//! * [`load`]: warehouse upserts and lineage rows.      * [`report`]: the daily report and seals.
//! * [`audit`]: the hash chain, `verify` and `trace`.     * [`generate`]: a seeded business day of feeds.
//! * [`error`]: the library error, [`EtlError`].
//!
//! SQL here touches only the schemas `etl`, `audit` and `warehouse`; the
//! engine's tables are reached through `workflow_core` only.

pub mod audit;
pub mod config;
pub mod error;
pub mod generate;
pub mod land;
pub mod load;
pub mod parse;
pub mod report;
pub mod transform;
pub mod workflow;

pub use error::EtlError;
pub use feeds;
use workflow_core::Registry;

/// The step types and workflows of the ETL.
pub fn registry() -> Registry {
    Registry::new().step_types(workflow::STEP_TYPES.iter().copied()).workflow(
        "daily_transactions",
        "per-feed land -> parse -> transform -> validate -> load into the warehouse, with audit lineage and a report",
        workflow::PARAMS,
        workflow::build,
    )
}

/// The ETL's migrations (warehouse schema as delivered, then `etl` and
/// `audit`), recorded in their own history table `etl._migrations`.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.create_schema("etl");
    m.dangerous_set_table_name("etl._migrations");
    m
}

/// Refreshes the planner's statistics of tables a previous stage has just
/// filled in bulk, before a set-based stage joins them: on fresh tables
/// (the first day, or a day far larger than the last) the planner would
/// otherwise estimate a handful of rows and pick nested loops over millions.
/// Runs on its own, outside the step's transaction, so the lock ANALYZE
/// takes is not held while the stage works.
pub(crate) async fn refresh_statistics(pool: &sqlx::PgPool, tables: &str) -> Result<(), workflow_core::StepError> {
    use workflow_core::ResultExt;
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {tables}"))).execute(pool).await.retryable("analyze")?;
    Ok(())
}

/// Pins the plans of a stage's bulk statements (whole feed-days joined to
/// whole feed-days) to hash joins for the rest of the transaction. Their
/// anti-joins look up rows the branch has not written yet (its own
/// lineage, its own rejects), which the statistics rightly call empty; a
/// nested loop chosen on that estimate then scans, for each of millions of
/// rows, a table other branches are filling at the same time (a 10M day
/// once sat in one such statement for minutes).
pub(crate) async fn bulk_plans(conn: &mut sqlx::PgConnection) -> Result<(), workflow_core::StepError> {
    use workflow_core::ResultExt;
    sqlx::query("SET LOCAL enable_nestloop = off").execute(conn).await.retryable("plan settings")?;
    Ok(())
}
