//! Defining work: the [`Step`] trait, what a step returns ([`StepOutcome`]),
//! and what it sees while it runs ([`StepContext`]).
//!
//! A step is a struct whose serialized form (typetag JSON under a frozen
//! type name) is its definition, persisted with the run's plan.

use crate::error::{StepError, StoreError};
use crate::ids::{Lease, RunId};
use crate::retry::RetryPolicy;
use async_trait::async_trait;
use serde_json::Value;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The queue a step belongs to unless it says otherwise.
pub const DEFAULT_QUEUE: &str = "default";

/// One unit of work.
///
/// Implement it on a serde struct and register it under a frozen name:
///
/// ```
/// use workflow_core::{async_trait, Step, StepContext, StepError, StepOutcome};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Greet { name: String }
///
/// #[typetag::serde(name = "example.greet")]
/// #[async_trait]
/// impl Step for Greet {
///     async fn run(&self, _ctx: &StepContext) -> Result<StepOutcome, StepError> {
///         Ok(StepOutcome::output(serde_json::json!({ "greeting": format!("hello {}", self.name) })))
///     }
/// }
/// ```
#[typetag::serde(tag = "type")]
#[async_trait]
pub trait Step: Send + Sync + fmt::Debug {
    /// Runs one attempt. Must be safe to run again after a crash: pass
    /// [`StepContext::input_hash`] to side effects as their idempotency key,
    /// or use [`StepContext::complete_in`] to commit effects with the result.
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError>;

    /// The queue the step is claimed from.
    fn queue(&self) -> &str {
        DEFAULT_QUEUE
    }

    /// Attempts, backoff and timeout.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
}

/// A child step produced by run-time fan-out.
#[derive(Debug)]
pub struct ChildStep {
    /// Unique among the parent's children; stored as `parent/name`.
    pub name: String,
    /// The child's definition.
    pub step: Box<dyn Step>,
}

/// What a successful attempt returns.
#[derive(Debug)]
pub enum StepOutcome {
    /// Done, with a JSON output dependents can read (size-limited).
    Output(Value),
    /// Done, and the work continues in these children: the parent's
    /// dependents wait for all of them.
    Expand(Vec<ChildStep>),
    /// The step already recorded its completion inside its own transaction
    /// (see [`StepContext::complete_in`]).
    Committed(Committed),
}

impl StepOutcome {
    /// An output.
    pub fn output(v: Value) -> Self {
        Self::Output(v)
    }

    /// No output (JSON null).
    pub fn done() -> Self {
        Self::Output(Value::Null)
    }
}

/// Proof that a transactional step recorded its completion itself. Only
/// [`StepContext::complete_in`] makes one.
#[derive(Debug)]
pub struct Committed(());

/// Records a step's completion inside a caller's transaction `C` (for
/// PostgreSQL, `sqlx::PgConnection`), fenced by the lease, so the step's own
/// writes and its completion commit together or not at all.
///
/// Stores that support transactional steps put an `Arc<dyn TxFence<C>>` into
/// the worker's [`Resources`].
#[async_trait]
pub trait TxFence<C: ?Sized + Send>: Send + Sync {
    /// Marks the step succeeded with `output` in `conn`'s open transaction.
    /// Fails with [`StoreError::LeaseLost`] when the lease no longer holds.
    async fn complete_in(&self, conn: &mut C, lease: Lease, output: &Value) -> Result<(), StoreError>;
}

/// Typed shared resources given to every step (a `PgPool`, an HTTP client...).
#[derive(Default)]
pub struct Resources {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Resources {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the resource of type `T`.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> &mut Self {
        self.map.insert(TypeId::of::<T>(), Box::new(value));
        self
    }

    /// The resource of type `T`, if any.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>()).and_then(|b| b.downcast_ref())
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resources({} entries)", self.map.len())
    }
}

/// What a running step sees.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The run.
    pub run_id: RunId,
    /// The workflow's name.
    pub workflow: String,
    /// The step's name in the run.
    pub step_name: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The run's correlation id (given at start or generated).
    pub correlation_id: String,
    /// sha256 over the step's canonical definition and its upstream
    /// outputs: the idempotency key to pass to side effects.
    pub input_hash: String,
    /// This attempt's lease.
    pub lease: Lease,
    /// Outputs of the direct upstream steps, by step name.
    pub upstream: Arc<BTreeMap<String, Value>>,
    /// Shared resources.
    pub resources: Arc<Resources>,
    /// Cancelled when the lease is lost, the run is cancelled, or the
    /// worker shuts down past its grace period. Long steps should watch it.
    pub cancel: CancellationToken,
}

impl StepContext {
    /// The output of the upstream step `name`.
    pub fn upstream(&self, name: &str) -> Result<&Value, StepError> {
        self.upstream.get(name).ok_or_else(|| StepError::Permanent(format!("no upstream step named {name:?}")))
    }

    /// Outputs of the children of the fanned-out upstream step `parent`,
    /// in name order.
    pub fn upstream_children<'a>(&'a self, parent: &str) -> impl Iterator<Item = (&'a str, &'a Value)> {
        let prefix = format!("{parent}/");
        self.upstream.iter().filter(move |(k, _)| k.starts_with(&prefix)).map(|(k, v)| (k.as_str(), v))
    }

    /// The shared resource of type `T`, or a permanent error naming it.
    pub fn resource<T: Any + Send + Sync>(&self) -> Result<&T, StepError> {
        self.resources.get::<T>().ok_or_else(|| {
            StepError::Permanent(format!("worker has no resource of type {}", std::any::type_name::<T>()))
        })
    }

    /// Records this step's success with `output` inside the caller's open
    /// transaction on `conn`, fenced by the lease. Commit the transaction
    /// afterwards and return the [`StepOutcome`] this gives: the step's
    /// writes and its completion then commit exactly once, or not at all.
    pub async fn complete_in<C: ?Sized + Send + 'static>(
        &self,
        conn: &mut C,
        output: Value,
    ) -> Result<StepOutcome, StepError> {
        let fence = self.resource::<Arc<dyn TxFence<C>>>()?;
        match fence.complete_in(conn, self.lease, &output).await {
            Ok(()) => Ok(StepOutcome::Committed(Committed(()))),
            Err(e @ StoreError::LeaseLost { .. }) => Err(StepError::Permanent(e.to_string())),
            Err(e) => Err(StepError::Retryable(e.to_string())),
        }
    }
}
