//! Domain model and engine for durable, step-by-step workflows.
//!
//! A *run* executes a workflow's DAG of *steps*. Every state change is
//! decided by [`state::transition`] (pure: no I/O, no clock) and persisted
//! through a [`Store`]; `workflow-pg` implements it on PostgreSQL.
//!
//! * [`step`], [`workflow`], [`registry`]: defining work and registering it.
//! * [`state`], [`retry`]: the state machine and retry policy.
//! * [`hash`]: the step input hash (memoization and idempotency key).
//! * [`store`]: the persistence seam.
//! * [`worker`]: claim -> execute -> record, generic over `S: Store`.
//! * [`testing`]: the conformance suite every store must pass.
//!
//! Nothing in this crate knows PostgreSQL.

pub mod error;
pub mod hash;
pub mod ids;
pub mod registry;
pub mod retry;
pub mod state;
pub mod step;
pub mod store;
pub mod testing;
pub mod worker;
pub mod workflow;

pub use crate::error::{ResultExt, StepError, StoreError};
pub use crate::ids::{Lease, RunId, StepId, WorkerId};
pub use crate::registry::{Registry, RegistryError};
pub use crate::retry::RetryPolicy;
pub use crate::state::{RunState, StepEvent, StepState, transition};
pub use crate::step::{ChildStep, Resources, Step, StepContext, StepOutcome, TxFence};
pub use crate::store::Store;
pub use crate::worker::{Worker, WorkerConfig, WorkerError};
pub use crate::workflow::{Params, Trigger, Workflow, WorkflowBuilder, WorkflowError};
pub use async_trait::async_trait;
pub use typetag;
