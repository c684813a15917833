//! The PostgreSQL [`Store`] of wf.
//!
//! [`PgStore`] implements the engine's persistence seam on sqlx: batched
//! claims with `FOR UPDATE SKIP LOCKED`, leases on the database clock with a
//! fencing token, completions that promote dependents through counters in
//! the same transaction, rescue of expired leases, operator actions recorded
//! in `wf.step_events`, and LISTEN/NOTIFY wake-ups (polling stays the source
//! of truth). SQL lives only in this crate, one module per aggregate:
//!
//! * [`schema`]: the embedded migrations and the start-up version check.
//! * `runs`: starting runs, reading them, operator actions.
//! * `cycle`: the hot path, one statement that records plain completions
//!   and claims the next batch.
//! * `steps`: heartbeat, fan-out completion, fail, release, rescue, fan-in.
//! * `history`, `workers`: the step history and the worker registry.
//! * `notify`: the listener that turns NOTIFY into wake-ups.
//! * `error`: maps `sqlx::Error` to [`StoreError`] once.
//! * [`fixtures`]: bulk inserts for benchmarks.
//!
//! [`Store`]: workflow_core::Store
//! [`StoreError`]: workflow_core::StoreError

mod cycle;
mod error;
pub mod fixtures;
mod history;
mod notify;
mod runs;
pub mod schema;
mod steps;
mod workers;

pub use crate::error::interpret;
pub use crate::schema::{MIGRATIONS_TABLE, migrator, queue_mismatches};

use sqlx::PgPool;
use std::sync::Arc;
use workflow_core::store::*;
use workflow_core::{Lease, Resources, RunId, StepState, StoreError, TxFence, WorkerId};

/// The NOTIFY channel for "ready work may be waiting".
pub const CHANNEL: &str = "wf_ready";

/// Session settings for the connections of a worker's control pool (the
/// pool given to [`PgStore::new`] in a worker).
///
/// The engine's statements are long CTEs over arrays; planning one costs
/// more than running it for a small batch (0.30 ms planning against
/// 0.18 ms execution for a one-step completion), so they are planned once
/// per connection (`force_generic_plan`). A generic plan cannot see a
/// batch's size (it guesses a claim's `LIMIT $n` as a tenth of the ready
/// steps: 50,000 with a million waiting, which made it merge-join the whole
/// table), and a plan made while the tables are still empty would keep
/// what suits empty tables. So the plan shape is pinned to what every one
/// of these statements is written for: index scans joined by nested loops,
/// no sequential or bitmap scans, no hash or merge joins, and no JIT (which
/// the same inflated estimates would switch on for every call). The join
/// order is not a setting: the statements reach every table through an
/// index condition on the batch's own keys (`id = ANY(...)`, a `LATERAL`
/// lookup of the run), so no order reads a whole table; a test plans them
/// on near-empty tables and checks the plans after the tables grew.
/// Measured against custom plans on the same cluster: about 1.4x the
/// no-op throughput. Not for connections that run other SQL (a step's own
/// work, reports).
pub const ENGINE_SESSION: &[(&str, &str)] = &[
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
    ("jit", "off"),
];

/// The engine's store on PostgreSQL. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    wakeups: Arc<tokio::sync::Notify>,
    notify: bool,
    hints: Arc<cycle::ClaimHints>,
}

impl PgStore {
    /// A store over `pool`, which should be the control plane's own pool
    /// (claims, heartbeats, completions), not the one steps use for their work.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, wakeups: Arc::new(tokio::sync::Notify::new()), notify: true, hints: Arc::default() }
    }

    /// This store sends no NOTIFY wake-ups (other workers then find new
    /// work by polling only); for measuring what notifications cost.
    pub fn without_notify(mut self) -> Self {
        self.notify = false;
        self
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts listening for wake-ups in the background (reconnecting after
    /// errors, then polling once since notifications sent meanwhile are lost).
    pub fn start_listener(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(notify::listen(self.pool.clone(), self.wakeups.clone()))
    }

    /// Starts a run inside the caller's own transaction (`conn`), so a run
    /// can be started atomically with the caller's writes.
    pub async fn run_insert_in(conn: &mut sqlx::PgConnection, p: RunInsert) -> Result<RunInserted, StoreError> {
        runs::insert(conn, p).await
    }
}

impl workflow_core::Store for PgStore {
    async fn schema_check(&self) -> Result<(), StoreError> {
        schema::check(&self.pool).await
    }

    async fn run_insert(&self, p: RunInsert) -> Result<RunInserted, StoreError> {
        let mut tx = self.pool.begin().await.map_err(interpret)?;
        let r = runs::insert(&mut tx, p).await?;
        tx.commit().await.map_err(interpret)?;
        Ok(r)
    }

    async fn steps_claim(&self, p: StepsClaim) -> Result<Vec<ClaimedStep>, StoreError> {
        cycle::claim(&self.pool, &self.hints, p).await
    }

    async fn leases_extend(&self, p: LeasesExtend) -> Result<Vec<Lease>, StoreError> {
        steps::extend(&self.pool, p).await
    }

    async fn steps_complete(&self, p: StepsComplete) -> Result<StepsCompleted, StoreError> {
        let mut p = p;
        if !self.notify {
            p.notify_above = usize::MAX;
        }
        cycle::complete_batch(&self.pool, &self.hints, p).await
    }

    async fn step_fail(&self, p: StepFail) -> Result<StepState, StoreError> {
        steps::fail(&self.pool, p).await
    }

    async fn steps_release(&self, p: StepsRelease) -> Result<usize, StoreError> {
        steps::release(&self.pool, p).await
    }

    async fn leases_rescue(&self, limit: u32) -> Result<Rescued, StoreError> {
        steps::rescue(&self.pool, limit).await
    }

    async fn run_resume(&self, p: OperatorAction) -> Result<usize, StoreError> {
        runs::resume(&self.pool, p).await
    }

    async fn run_cancel(&self, p: OperatorAction) -> Result<usize, StoreError> {
        runs::cancel(&self.pool, p).await
    }

    async fn step_retry(&self, p: OperatorAction) -> Result<usize, StoreError> {
        runs::retry_step(&self.pool, p).await
    }

    async fn step_skip(&self, p: OperatorAction) -> Result<usize, StoreError> {
        runs::skip_step(&self.pool, p).await
    }

    async fn run_get(&self, id: RunId) -> Result<RunInfo, StoreError> {
        runs::get(&self.pool, id).await
    }

    async fn runs_list(&self, f: RunsFilter) -> Result<Vec<RunInfo>, StoreError> {
        runs::list(&self.pool, f).await
    }

    async fn steps_list(&self, run: RunId) -> Result<Vec<StepInfo>, StoreError> {
        history::steps(&self.pool, run).await
    }

    async fn events_list(&self, run: RunId, step: Option<String>) -> Result<Vec<EventInfo>, StoreError> {
        history::events(&self.pool, run, step).await
    }

    async fn worker_register(&self, w: WorkerInfo) -> Result<(), StoreError> {
        workers::register(&self.pool, w).await
    }

    async fn worker_touch(&self, id: WorkerId, stopped: bool) -> Result<(), StoreError> {
        workers::touch(&self.pool, id, stopped).await
    }

    async fn workers_list(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        workers::list(&self.pool).await
    }

    fn wakeups(&self) -> Arc<tokio::sync::Notify> {
        self.wakeups.clone()
    }

    fn provide_resources(&self, resources: &mut Resources) {
        let fence: Arc<dyn TxFence<sqlx::PgConnection>> = Arc::new(PgFence);
        resources.insert(fence);
    }
}

/// Records a transactional step's completion in the step's own transaction.
struct PgFence;

#[async_trait::async_trait]
impl TxFence<sqlx::PgConnection> for PgFence {
    async fn complete_in(
        &self,
        conn: &mut sqlx::PgConnection,
        lease: Lease,
        output: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let items = vec![StepCompletion { lease, completion: Completion::Output(output.clone()) }];
        // These statements are planned here, on the step's own connection,
        // with its own settings (custom plans from the table statistics),
        // not the control pool's ENGINE_SESSION. Their estimates can pass
        // JIT's threshold (`jit_above_cost`): then every completion compiled
        // its plan first, 50-700 ms, and 64 concurrent transactional steps
        // ran at 700 steps/s instead of 3,000. No JIT for the rest of this
        // transaction.
        sqlx::query("SELECT set_config('jit', 'off', true)").execute(&mut *conn).await.map_err(interpret)?;
        // The completing worker claims one promoted dependent itself; wake
        // the others only when more became ready.
        let r = steps::complete_on(conn, items, 1).await?;
        if r.completed.is_empty() {
            return Err(StoreError::LeaseLost { step: lease.step.0, token: lease.token });
        }
        Ok(())
    }
}
