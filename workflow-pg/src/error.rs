//! Maps `sqlx::Error` into the engine's [`StoreError`], once.

use workflow_core::StoreError;

/// Classifies a driver error: connection trouble is `Unavailable` (worth
/// waiting out), a missing table means an unmigrated database, and so on.
pub fn interpret(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound("no such row".into()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // Connection exceptions, admin shutdown, crash shutdown, cannot connect now.
                c if c.starts_with("08") => StoreError::Unavailable(db.message().to_owned()),
                "57P01" | "57P02" | "57P03" => StoreError::Unavailable(db.message().to_owned()),
                // Deadlock or serialization failure: the caller retries the transaction.
                "40P01" | "40001" => StoreError::Unavailable(format!("transaction conflict: {}", db.message())),
                "42P01" | "3F000" => StoreError::Schema(format!(
                    "the database has no wf schema ({}); run `wf migrate` first",
                    db.message()
                )),
                "25006" => StoreError::Other(format!("the database is read-only: {}", db.message())),
                "42501" => StoreError::Other(format!("permission denied: {}", db.message())),
                _ => StoreError::Other(format!("{} (SQLSTATE {code})", db.message())),
            }
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

/// True for errors after which the whole transaction may simply be retried.
pub(crate) fn is_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}
