//! Errors of the ETL library, one enum for config, files and the database.

/// What can go wrong outside a step (steps map these to `StepError`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtlError {
    /// The feeds config is unreadable or inconsistent.
    #[error("feeds config {path}: {message}")]
    Config {
        /// The config file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A feed file could not be parsed at all.
    #[error(transparent)]
    Feed(#[from] feeds::FeedError),
    /// A database call failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
}

impl EtlError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        EtlError::Io { path: path.as_ref().display().to_string(), source }
    }
}
