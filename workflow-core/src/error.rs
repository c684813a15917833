//! Errors of the core: what a step returns ([`StepError`]) and what a store
//! reports ([`StoreError`]). Stores map their driver errors into
//! `StoreError` once, so the engine never sees SQL errors.

use std::fmt;

/// Why a step attempt did not succeed.
///
/// Errors are retryable unless the step says they are permanent: a network
/// blip should cost a retry, a malformed definition should not cost ten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// Worth another attempt (after backoff), if attempts remain.
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help: the step fails at once.
    #[error("{0}")]
    Permanent(String),
}

impl StepError {
    /// A retryable error from anything displayable.
    pub fn retryable(e: impl fmt::Display) -> Self {
        Self::Retryable(e.to_string())
    }

    /// A permanent error from anything displayable.
    pub fn permanent(e: impl fmt::Display) -> Self {
        Self::Permanent(e.to_string())
    }

    /// True when another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// Helpers to classify any error as retryable or permanent, with context.
pub trait ResultExt<T> {
    /// Maps the error to [`StepError::Retryable`], prefixed by `context`.
    fn retryable(self, context: &str) -> Result<T, StepError>;
    /// Maps the error to [`StepError::Permanent`], prefixed by `context`.
    fn permanent(self, context: &str) -> Result<T, StepError>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn retryable(self, context: &str) -> Result<T, StepError> {
        self.map_err(|e| StepError::Retryable(format!("{context}: {e}")))
    }
    fn permanent(self, context: &str) -> Result<T, StepError> {
        self.map_err(|e| StepError::Permanent(format!("{context}: {e}")))
    }
}

/// What can go wrong talking to a [`crate::Store`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The lease `(step, token)` is no longer held: the step was rescued,
    /// cancelled or completed by someone else. The result must be discarded.
    #[error("lease lost: step {step} token {token} is no longer held")]
    LeaseLost {
        /// The step.
        step: i64,
        /// The token that no longer holds.
        token: i64,
    },
    /// A run, step, workflow or worker does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the current state (for example
    /// skipping a running step).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached or the connection broke; worth a retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database schema is missing or at a version this binary does not know.
    #[error("{0}")]
    Schema(String),
    /// A stored value could not be read back (corrupt row, bad JSON).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
