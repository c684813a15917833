//! The worker loop, generic over [`Store`]: claim -> execute -> record.
//!
//! One main loop claims steps up to the concurrency, runs each in its own
//! task, and records results in batches (one store call for every plain
//! step finished since the last flush). A heartbeat task extends the exact
//! leases held and cancels the local task of any lease that did not extend;
//! a rescue task returns other workers' expired leases to ready. On
//! shutdown the worker stops claiming, lets running steps finish within a
//! grace period, and releases the rest. No SQL here.

use crate::error::{StepError, StoreError};
use crate::hash::input_hash;
use crate::ids::{Lease, StepId, WorkerId};
use crate::registry::Registry;
use crate::step::{Resources, Step, StepContext, StepOutcome};
use crate::store::{
    ClaimedStep, Completion, FailKind, LeasesExtend, NewStep, StepCompletion, StepFail, StepsClaim, StepsComplete,
    StepsRelease, Store, WorkerInfo,
};
use futures_util::FutureExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Queues to claim from.
    pub queues: Vec<String>,
    /// Steps running at once.
    pub concurrency: usize,
    /// Lease length; heartbeats extend it every third of it.
    pub lease_ttl: Duration,
    /// Longest wait between two claims when no wake-up comes.
    pub poll_interval: Duration,
    /// How often to look for other workers' expired leases.
    pub rescue_interval: Duration,
    /// On shutdown, how long running steps may take to finish before they
    /// are cancelled and released.
    pub shutdown_grace: Duration,
    /// Largest step output accepted, in bytes of JSON.
    pub max_output_bytes: usize,
    /// Batch completion calls in flight at once (1: record, then claim again).
    pub max_flushes: usize,
    /// Claim calls in flight at once, each for up to `concurrency /
    /// max_claims` steps. Either way the loop keeps settling and recording
    /// results while a claim is on its way; more than one also overlaps
    /// the claims, at the price of smaller ones (one measured faster on two
    /// cores: docs/benchmarks.md).
    pub max_claims: usize,
    /// How long a finished plain step may wait for others to share its
    /// batch completion call, and a free slot for others before a claim.
    /// A completion batch goes out at once when it holds `concurrency`
    /// steps, a claim when its share of the slots (see `max_claims`) is
    /// free; either at once when no step is running.
    pub batch_linger: Duration,
    /// Host name recorded in the worker registry.
    pub host: String,
}

impl WorkerConfig {
    /// Store calls this worker may have in flight at once: its claims and
    /// batch completion calls, the heartbeat and the rescuer. A store on a
    /// connection pool needs at least this many connections (plus any its
    /// wake-up listener holds), or a claim waits for a connection behind
    /// the batch calls.
    pub fn store_calls_in_flight(&self) -> usize {
        self.max_claims.max(1) + self.max_flushes.max(1) + 2
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queues: vec![crate::step::DEFAULT_QUEUE.to_owned()],
            concurrency: 8,
            lease_ttl: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(10),
            max_output_bytes: 1 << 20,
            max_flushes: 4,
            max_claims: 1,
            batch_linger: Duration::from_millis(2),
            host: String::from("localhost"),
        }
    }
}

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The registry is inconsistent.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The store refused to work (schema mismatch, for example).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration makes no sense.
    #[error("bad worker configuration: {0}")]
    Config(String),
}

/// What a worker did, returned when it stops.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Steps claimed.
    pub claimed: AtomicU64,
    /// Completions recorded.
    pub succeeded: AtomicU64,
    /// Failed attempts recorded (retried or not).
    pub failed: AtomicU64,
    /// Results discarded because the lease no longer held (zombie completions).
    pub rejected: AtomicU64,
    /// Leases the heartbeat found lost.
    pub leases_lost: AtomicU64,
    /// Leases released on shutdown.
    pub released: AtomicU64,
}

/// A leased step held by this process.
struct Held {
    token: i64,
    cancel: CancellationToken,
    /// Set by the heartbeat when the lease did not extend.
    lost: bool,
    name: String,
    attempt: u32,
    retry: crate::RetryPolicy,
}

type HeldMap = Arc<Mutex<HashMap<StepId, Held>>>;

/// The end of one attempt, as the main loop sees it.
enum Attempt {
    Finished(Result<StepOutcome, StepError>),
    TimedOut(Duration),
    Cancelled,
}

/// Runs steps of the registered types from the configured queues.
pub struct Worker<S: Store> {
    store: Arc<S>,
    registry: Arc<Registry>,
    config: WorkerConfig,
    resources: Arc<Resources>,
    id: WorkerId,
    stats: Arc<WorkerStats>,
    claim_soon: std::sync::atomic::AtomicBool,
}

impl<S: Store> Worker<S> {
    /// A worker with a new identity. Fails if the registry is inconsistent.
    pub fn new(
        store: Arc<S>,
        registry: Registry,
        config: WorkerConfig,
        mut resources: Resources,
    ) -> Result<Self, WorkerError> {
        registry.validate()?;
        if config.concurrency == 0 || config.queues.is_empty() || config.lease_ttl < Duration::from_millis(300) {
            return Err(WorkerError::Config(
                "concurrency and queues must be non-empty and the lease ttl at least 300ms".into(),
            ));
        }
        store.provide_resources(&mut resources);
        Ok(Self {
            store,
            registry: Arc::new(registry),
            config,
            resources: Arc::new(resources),
            id: WorkerId::new(),
            stats: Arc::default(),
            claim_soon: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// This process start's identity.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// Counters, readable while the worker runs.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` is cancelled, then shuts down gracefully.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Arc<WorkerStats>, WorkerError> {
        self.wait_for_store(&shutdown).await?;
        let held: HeldMap = Arc::default();
        let healthy = Arc::new(AtomicU64::new(1));
        let background = CancellationToken::new();
        let hb = tokio::spawn(heartbeat_loop(
            self.store.clone(),
            self.id,
            self.config.lease_ttl,
            held.clone(),
            healthy.clone(),
            self.stats.clone(),
            background.clone(),
        ));
        let rescue =
            tokio::spawn(rescue_loop(self.store.clone(), self.config.rescue_interval, healthy, background.clone()));
        info!(worker = %self.id, queues = ?self.config.queues, concurrency = self.config.concurrency, "worker started");
        let result = self.main_loop(held, &shutdown).await;
        background.cancel();
        let _ = tokio::join!(hb, rescue);
        if let Err(e) = self.store.worker_touch(self.id, true).await {
            debug!(error = %e, "could not mark the worker stopped");
        }
        info!(worker = %self.id, "worker stopped");
        result.map(|()| self.stats.clone())
    }

    /// Checks the schema and registers, waiting out an unreachable database.
    async fn wait_for_store(&self, shutdown: &CancellationToken) -> Result<(), WorkerError> {
        let mut backoff = Backoff::new();
        loop {
            let r = async {
                self.store.schema_check().await?;
                self.store
                    .worker_register(WorkerInfo {
                        id: self.id,
                        host: self.config.host.clone(),
                        pid: std::process::id(),
                        queues: self.config.queues.clone(),
                        step_types: self.registry.step_type_names().to_vec(),
                        concurrency: self.config.concurrency as u32,
                        started_at: None,
                        last_seen_at: None,
                        stopped_at: None,
                    })
                    .await
            }
            .await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    warn!(error = %e, "database unreachable; waiting");
                    tokio::select! {
                        () = backoff.sleep() => {}
                        () = shutdown.cancelled() => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn main_loop(&self, held: HeldMap, shutdown: &CancellationToken) -> Result<(), WorkerError> {
        let wakeups = self.store.wakeups();
        let mut tasks: JoinSet<(Lease, Attempt, Duration)> = JoinSet::new();
        // Results are recorded by up to `max_flushes` concurrent batch calls,
        // so commits overlap (group commit) while the loop keeps claiming.
        // A batch call also carries the next claim when one is due as it
        // leaves: one round trip (and, in PostgreSQL, one statement and one
        // commit) for the results and the work that takes their slots.
        let mut flushes: JoinSet<Flushed> = JoinSet::new();
        // Claims of their own run beside the loop too (with those riding on
        // batch calls, up to `max_claims`): while one is on its way, the
        // loop keeps settling and recording results.
        let mut claims: JoinSet<Claimed> = JoinSet::new();
        let mut cs = ClaimState { more_ready: true, ..ClaimState::default() };
        let mut in_flight = 0usize;
        let mut done: Vec<StepCompletion> = Vec::new();
        // When the oldest result in `done` arrived.
        let mut done_since: Option<tokio::time::Instant> = None;
        let mut release: Vec<Lease> = Vec::new();
        let mut backoff = Backoff::new();
        let mut retry_flush_at: Option<tokio::time::Instant> = None;
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        // Set by the wait at the bottom of the loop, handled at the top.
        let mut woke_task: Option<(Lease, Attempt, Duration)> = None;
        let mut woke_flush: Option<Flushed> = None;
        let mut woke_claim: Option<Claimed> = None;
        loop {
            let returned = std::iter::from_fn(|| {
                woke_claim.take().or_else(|| claims.try_join_next().map(|j| j.expect("claim tasks do not panic")))
            });
            for (asked, seq, result) in returned.collect::<Vec<_>>() {
                match result {
                    Ok(claimed) => {
                        backoff.reset();
                        self.claim_returned(&mut cs, asked, seq, claimed, shutdown, &held, &mut tasks, &mut release);
                    }
                    Err(e) => {
                        warn!(error = %e, "claim failed; backing off");
                        cs.failed(asked, tokio::time::Instant::now() + backoff.next_delay());
                    }
                }
            }
            let finished = std::iter::from_fn(|| {
                woke_task
                    .take()
                    .or_else(|| tasks.try_join_next().map(|j| j.expect("attempt tasks catch their own panics")))
            });
            for (lease, attempt, elapsed) in finished.collect::<Vec<_>>() {
                self.settle(lease, attempt, elapsed, &held, &mut done, &mut release).await;
            }
            let flushed = std::iter::from_fn(|| {
                woke_flush.take().or_else(|| flushes.try_join_next().map(|j| j.expect("flush tasks do not panic")))
            });
            for (items, mut result, attached) in flushed.collect::<Vec<_>>() {
                in_flight -= items.len();
                let claimed = result.as_mut().map(|r| std::mem::take(&mut r.claimed)).ok();
                match self.flushed(items, result, &held, &mut done) {
                    Ok(promoted) => {
                        backoff.reset();
                        if let (Some((asked, seq)), Some(claimed)) = (attached, claimed) {
                            self.claim_returned(
                                &mut cs,
                                asked,
                                seq,
                                claimed,
                                shutdown,
                                &held,
                                &mut tasks,
                                &mut release,
                            );
                        }
                        if promoted > 0 {
                            // Made ready by this call, so not seen by its claim.
                            cs.woken();
                        }
                    }
                    Err(()) => {
                        let at = tokio::time::Instant::now() + backoff.next_delay();
                        retry_flush_at = Some(at);
                        if let Some((asked, _)) = attached {
                            cs.failed(asked, at);
                        }
                    }
                }
            }
            let now = tokio::time::Instant::now();
            // Decided before the flush, so that the flush can carry it.
            let mut ask = None;
            if !shutdown.is_cancelled() {
                if self.claim_soon.swap(false, Ordering::Relaxed) {
                    cs.woken();
                }
                let free = self.config.concurrency.saturating_sub(tasks.len() + cs.asked);
                ask = self.claim_due(&mut cs, free, done.len() + in_flight, tasks.is_empty(), now);
            }
            let may_flush = retry_flush_at.is_none_or(|t| now >= t);
            if done.is_empty() {
                done_since = None;
            } else if done_since.is_none() {
                done_since = Some(now);
            }
            // Batch results: a call per step costs far more than a row in a
            // call. Wait for more unless the batch is full, nothing else is
            // running, or the oldest result has waited its linger.
            let worth_it = done.len() >= self.config.concurrency
                || tasks.is_empty()
                || shutdown.is_cancelled()
                || done_since.is_some_and(|t| now >= t + self.config.batch_linger);
            if !done.is_empty() && flushes.len() < self.config.max_flushes.max(1) && may_flush && worth_it {
                retry_flush_at = None;
                done_since = None;
                let items = std::mem::take(&mut done);
                in_flight += items.len();
                // The slots this worker fills itself before the claim below:
                // a wake-up is sent only for ready steps beyond them.
                let free = self.config.concurrency.saturating_sub(tasks.len() + cs.asked);
                let claim = ask.take().map(|n| self.claim_params(&mut cs, n));
                let attached = claim.as_ref().map(|c| (c.limit as usize, cs.wake_seq));
                let (store, worker) = (self.store.clone(), self.id);
                flushes.spawn(async move {
                    let p = StepsComplete { worker, items: items.clone(), notify_above: free, claim };
                    let r = store.steps_complete(p).await;
                    (items, r, attached)
                });
            }
            if let Some(n) = ask {
                let p = self.claim_params(&mut cs, n);
                let (store, seq) = (self.store.clone(), cs.wake_seq);
                claims.spawn(async move { (n, seq, store.steps_claim(p).await) });
            }
            if !release.is_empty() {
                match self.store.steps_release(StepsRelease { worker: self.id, leases: release.clone() }).await {
                    Ok(n) => {
                        self.stats.released.fetch_add(n as u64, Ordering::Relaxed);
                        info!(released = n, "leases released on shutdown");
                        let mut map = held.lock().expect("held map");
                        for l in release.drain(..) {
                            map.remove(&l.step);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "releasing leases failed; will retry");
                        backoff.sleep().await;
                    }
                }
            }
            if shutdown.is_cancelled() {
                let deadline = *grace_deadline.get_or_insert_with(|| {
                    info!(running = tasks.len(), "shutting down: no new claims");
                    tokio::time::Instant::now() + self.config.shutdown_grace
                });
                if tasks.is_empty() && flushes.is_empty() && claims.is_empty() && done.is_empty() && release.is_empty()
                {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    for h in held.lock().expect("held map").values() {
                        h.cancel.cancel();
                    }
                }
            }
            let flush_retry = async {
                match retry_flush_at {
                    Some(t) if !done.is_empty() => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            let linger = done_since
                .filter(|_| flushes.len() < self.config.max_flushes.max(1) && retry_flush_at.is_none())
                .map(|t| t + self.config.batch_linger);
            let claim_at = cs
                .free_since
                .filter(|_| {
                    cs.more_ready
                        && !shutdown.is_cancelled()
                        && done.len() + in_flight < 4 * self.config.concurrency
                        && cs.in_flight < self.config.max_claims.max(1)
                })
                .map(|t| cs.retry_at.map_or(t + self.config.batch_linger, |r| r.max(t + self.config.batch_linger)));
            tokio::select! {
                () = sleep_until_opt(linger), if linger.is_some() => {}
                () = sleep_until_opt(claim_at), if claim_at.is_some() => {}
                Some(joined) = tasks.join_next() => {
                    woke_task = Some(joined.expect("attempt tasks catch their own panics"));
                }
                Some(joined) = flushes.join_next() => woke_flush = Some(joined.expect("flush tasks do not panic")),
                Some(joined) = claims.join_next() => woke_claim = Some(joined.expect("claim tasks do not panic")),
                () = flush_retry => {}
                () = wakeups.notified() => cs.woken(),
                () = tokio::time::sleep(self.config.poll_interval) => cs.woken(),
                () = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
                () = sleep_until_opt(grace_deadline.filter(|d| *d > tokio::time::Instant::now())), if shutdown.is_cancelled() => {}
            }
        }
    }

    /// How many slots to claim now, if a claim is due: one claim for many
    /// free slots (a `max_claims`-th of the concurrency each, all of it by
    /// default), made when that share is free, when nothing runs, or when a
    /// free slot has waited its linger. (Claiming at half the share halved
    /// the claims and cost a third of the no-op throughput.)
    fn claim_due(
        &self,
        cs: &mut ClaimState,
        free: usize,
        backlog: usize,
        nothing_runs: bool,
        now: tokio::time::Instant,
    ) -> Option<usize> {
        if free == 0 {
            cs.free_since = None;
        } else if cs.free_since.is_none() {
            cs.free_since = Some(now);
        }
        let max_claims = self.config.max_claims.max(1);
        let share = self.config.concurrency.div_ceil(max_claims);
        let worth_it = free >= share
            || (nothing_runs && cs.in_flight == 0)
            || cs.free_since.is_some_and(|t| now >= t + self.config.batch_linger);
        (free > 0
            && cs.more_ready
            && backlog < 4 * self.config.concurrency
            && worth_it
            && cs.in_flight < max_claims
            && cs.retry_at.is_none_or(|t| now >= t))
        .then(|| free.min(share))
    }

    /// A claim for `n` slots, counted as in flight.
    fn claim_params(&self, cs: &mut ClaimState, n: usize) -> StepsClaim {
        cs.free_since = None;
        cs.retry_at = None;
        cs.asked += n;
        cs.in_flight += 1;
        StepsClaim {
            worker: self.id,
            queues: self.config.queues.clone(),
            step_types: self.registry.step_type_names().to_vec(),
            limit: n as u32,
            lease_ttl: self.config.lease_ttl,
        }
    }

    /// Starts what a claim returned (or gives it back, if the worker is
    /// stopping).
    #[allow(clippy::too_many_arguments)]
    fn claim_returned(
        &self,
        cs: &mut ClaimState,
        asked: usize,
        seq: u64,
        claimed: Vec<ClaimedStep>,
        shutdown: &CancellationToken,
        held: &HeldMap,
        tasks: &mut JoinSet<(Lease, Attempt, Duration)>,
        release: &mut Vec<Lease>,
    ) {
        cs.asked -= asked;
        cs.in_flight -= 1;
        self.stats.claimed.fetch_add(claimed.len() as u64, Ordering::Relaxed);
        cs.more_ready = claimed.len() == asked || cs.wake_seq != seq;
        for c in claimed {
            if shutdown.is_cancelled() {
                // Claimed as the worker stopped: give it back untouched.
                release.push(c.lease);
            } else {
                self.spawn_attempt(c, held, tasks);
            }
        }
    }

    /// Handles a finished batch call: forgets recorded and rejected leases,
    /// or puts the items back for another try. Returns how many steps the
    /// batch made ready.
    fn flushed(
        &self,
        items: Vec<StepCompletion>,
        result: Result<crate::store::StepsCompleted, StoreError>,
        held: &HeldMap,
        done: &mut Vec<StepCompletion>,
    ) -> Result<usize, ()> {
        match result {
            Ok(r) => {
                self.stats.succeeded.fetch_add(r.completed.len() as u64, Ordering::Relaxed);
                self.stats.rejected.fetch_add(r.rejected.len() as u64, Ordering::Relaxed);
                for l in &r.rejected {
                    warn!(step = %l.step, token = l.token, "completion rejected: lease no longer held (zombie result discarded)");
                }
                let mut map = held.lock().expect("held map");
                for l in r.completed.iter().chain(&r.rejected) {
                    map.remove(&l.step);
                }
                Ok(r.promoted)
            }
            Err(e) => {
                warn!(error = %e, steps = items.len(), "recording results failed; will retry");
                done.extend(items);
                Err(())
            }
        }
    }

    fn spawn_attempt(&self, c: ClaimedStep, held: &HeldMap, tasks: &mut JoinSet<(Lease, Attempt, Duration)>) {
        let cancel = CancellationToken::new();
        held.lock().expect("held map").insert(
            c.lease.step,
            Held {
                token: c.lease.token,
                cancel: cancel.clone(),
                lost: false,
                name: c.name.clone(),
                attempt: c.attempt,
                retry: c.retry,
            },
        );
        let span = info_span!(
            "step",
            run_id = %c.run_id,
            correlation_id = %c.correlation_id,
            step = %c.name,
            attempt = c.attempt,
        );
        let resources = self.resources.clone();
        let lease = c.lease;
        tasks.spawn(
            async move {
                let started = Instant::now();
                // A panic becomes a failed attempt instead of losing track of
                // the lease (caught here rather than by a nested task: one
                // task and one wake-up per step instead of two).
                let attempt = match AssertUnwindSafe(execute(c, resources, cancel)).catch_unwind().await {
                    Ok(a) => a,
                    Err(p) => {
                        Attempt::Finished(Err(StepError::Retryable(format!("step panicked: {}", panic_message(&*p)))))
                    }
                };
                (lease, attempt, started.elapsed())
            }
            .instrument(span),
        );
    }

    /// Turns an attempt's end into a pending completion, a failure record,
    /// a release, or nothing (lease lost).
    async fn settle(
        &self,
        lease: Lease,
        attempt: Attempt,
        elapsed: Duration,
        held: &HeldMap,
        done: &mut Vec<StepCompletion>,
        release: &mut Vec<Lease>,
    ) {
        let (lost, parent) = match held.lock().expect("held map").get(&lease.step) {
            Some(h) => (h.lost, h.name.clone()),
            None => (true, String::new()),
        };
        let (kind, err) = match attempt {
            Attempt::Cancelled if lost => return,
            Attempt::Cancelled => {
                release.push(lease);
                return;
            }
            Attempt::Finished(Ok(StepOutcome::Committed(_))) => {
                held.lock().expect("held map").remove(&lease.step);
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                // Its commit may have made dependents ready: claim them here
                // rather than have the store wake every worker.
                self.claim_soon.store(true, Ordering::Relaxed);
                return;
            }
            Attempt::Finished(Ok(StepOutcome::Output(v))) => {
                match check_output_size(&v, self.config.max_output_bytes) {
                    Ok(()) => {
                        done.push(StepCompletion { lease, completion: Completion::Output(v) });
                        return;
                    }
                    Err(e) => (FailKind::Error, e),
                }
            }
            Attempt::Finished(Ok(StepOutcome::Expand(children))) => match children_to_steps(&parent, &children) {
                Ok(steps) => {
                    done.push(StepCompletion { lease, completion: Completion::Expand(steps) });
                    return;
                }
                Err(e) => (FailKind::Error, e),
            },
            Attempt::Finished(Err(e)) => (FailKind::Error, e),
            Attempt::TimedOut(t) => (FailKind::Timeout, StepError::Retryable(format!("timed out after {t:?}"))),
        };
        self.record_failure(lease, kind, err, elapsed, held).await;
    }

    async fn record_failure(&self, lease: Lease, kind: FailKind, err: StepError, elapsed: Duration, held: &HeldMap) {
        let Some((attempt, policy)) = held.lock().expect("held map").get(&lease.step).map(|h| (h.attempt, h.retry))
        else {
            return;
        };
        let retry_in =
            (err.is_retryable() && policy.has_attempts_left(attempt)).then(|| policy.backoff(attempt, fastrand::f64()));
        let p = StepFail { worker: self.id, lease, kind, error: err.to_string(), retry_in };
        let mut backoff = Backoff::new();
        loop {
            match self.store.step_fail(p.clone()).await {
                Ok(to) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %err, ?elapsed, status = %to, "attempt failed");
                    break;
                }
                Err(StoreError::LeaseLost { .. }) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    warn!(step = %lease.step, token = lease.token, "failure of a lost lease discarded");
                    break;
                }
                Err(e) if e.is_transient() => {
                    warn!(error = %e, "recording a failure failed; will retry");
                    backoff.sleep().await;
                }
                Err(e) => {
                    error!(error = %e, "recording a failure failed");
                    break;
                }
            }
        }
        held.lock().expect("held map").remove(&lease.step);
    }
}

fn check_output_size(v: &serde_json::Value, max: usize) -> Result<(), StepError> {
    let n = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if n > max {
        return Err(StepError::Permanent(format!("output is {n} bytes, more than the {max}-byte limit")));
    }
    Ok(())
}

fn children_to_steps(parent: &str, children: &[crate::step::ChildStep]) -> Result<Vec<NewStep>, StepError> {
    let mut names = std::collections::HashSet::new();
    children
        .iter()
        .map(|c| {
            if c.name.is_empty() || !names.insert(c.name.as_str()) {
                return Err(StepError::Permanent(format!("fan-out child name {:?} is empty or repeated", c.name)));
            }
            NewStep::child(parent, c).map_err(|e| StepError::Permanent(e.to_string()))
        })
        .collect()
}

async fn execute(c: ClaimedStep, resources: Arc<Resources>, cancel: CancellationToken) -> Attempt {
    let step: Box<dyn Step> = match <Box<dyn Step>>::deserialize(&c.definition) {
        Ok(s) => s,
        Err(e) => {
            return Attempt::Finished(Err(StepError::Permanent(format!(
                "cannot read the definition of step type {:?}: {e}",
                c.step_type
            ))));
        }
    };
    let ctx = StepContext {
        run_id: c.run_id,
        workflow: c.workflow,
        step_name: c.name,
        attempt: c.attempt,
        correlation_id: c.correlation_id,
        input_hash: input_hash(&c.definition, &c.upstream),
        lease: c.lease,
        upstream: Arc::new(c.upstream),
        resources,
        cancel: cancel.clone(),
    };
    debug!("step started");
    let run = step.run(&ctx);
    let limited = async {
        match c.retry.timeout {
            Some(t) => tokio::time::timeout(t, run).await.map_err(|_| t),
            None => Ok(run.await),
        }
    };
    tokio::select! {
        r = limited => match r {
            Ok(r) => Attempt::Finished(r),
            Err(t) => Attempt::TimedOut(t),
        },
        () = cancel.cancelled() => Attempt::Cancelled,
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Extends held leases every third of the ttl; cancels the local task of
/// any lease that did not extend, and of every lease once the database has
/// been unreachable for two thirds of the ttl (before anyone can rescue them).
async fn heartbeat_loop<S: Store>(
    store: Arc<S>,
    worker: WorkerId,
    ttl: Duration,
    held: HeldMap,
    healthy: Arc<AtomicU64>,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
) {
    let period = ttl / 3;
    let local_deadline = ttl * 2 / 3;
    let mut last_ok = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = stop.cancelled() => return,
        }
        let leases: Vec<Lease> = held
            .lock()
            .expect("held map")
            .iter()
            .filter(|(_, h)| !h.lost)
            .map(|(&step, h)| Lease { step, token: h.token })
            .collect();
        let sent_at = Instant::now();
        let r = async {
            let extended = if leases.is_empty() {
                Vec::new()
            } else {
                store.leases_extend(LeasesExtend { worker, leases: leases.clone(), lease_ttl: ttl }).await?
            };
            store.worker_touch(worker, false).await?;
            Ok::<_, StoreError>(extended)
        }
        .await;
        match r {
            Ok(extended) => {
                last_ok = sent_at;
                healthy.store(1, Ordering::Release);
                let kept: std::collections::HashSet<Lease> = extended.into_iter().collect();
                let mut map = held.lock().expect("held map");
                for l in leases.iter().filter(|l| !kept.contains(l)) {
                    if let Some(h) = map.get_mut(&l.step).filter(|h| h.token == l.token) {
                        h.lost = true;
                        h.cancel.cancel();
                        stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                        warn!(step = %l.step, token = l.token, "lease lost (detected by heartbeat); local attempt cancelled");
                    }
                }
            }
            Err(e) => {
                healthy.store(0, Ordering::Release);
                warn!(error = %e, "heartbeat failed");
                if last_ok.elapsed() >= local_deadline {
                    let mut map = held.lock().expect("held map");
                    for (step, h) in map.iter_mut().filter(|(_, h)| !h.lost) {
                        h.lost = true;
                        h.cancel.cancel();
                        stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                        warn!(step = %step, "database unreachable past the local lease deadline; attempt cancelled");
                    }
                }
            }
        }
    }
}

/// Returns expired leases to ready; only while this worker's own last
/// heartbeat succeeded (after a reconnect, heartbeat first, then rescue).
async fn rescue_loop<S: Store>(store: Arc<S>, every: Duration, healthy: Arc<AtomicU64>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
        if healthy.load(Ordering::Acquire) == 0 {
            continue;
        }
        match store.leases_rescue(1000).await {
            Ok(r) if r.retried + r.failed > 0 => {
                info!(retried = r.retried, failed = r.failed, "rescued expired leases");
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "rescue failed"),
        }
    }
}

/// A batch call's answer: the results it carried, what the store did, and
/// for a claim riding on it the slots asked for and the wake-up count when
/// it left.
type Flushed = (Vec<StepCompletion>, Result<crate::store::StepsCompleted, StoreError>, Option<(usize, u64)>);

/// The main loop's claim bookkeeping.
#[derive(Debug, Default)]
struct ClaimState {
    /// Claims in flight, their own calls and those riding on batch calls.
    in_flight: usize,
    /// Slots they asked for.
    asked: usize,
    /// Wake-ups seen so far (notifications, polls, steps this worker made
    /// ready): a claim that comes back short means "nothing more ready"
    /// only if none arrived while it was on its way.
    wake_seq: u64,
    /// Ready work may be waiting.
    more_ready: bool,
    /// When a slot became free with no claim made for it yet.
    free_since: Option<tokio::time::Instant>,
    /// After a failed claim, the next one not before this.
    retry_at: Option<tokio::time::Instant>,
}

impl ClaimState {
    /// Ready work may have appeared.
    fn woken(&mut self) {
        self.more_ready = true;
        self.wake_seq += 1;
    }

    /// A claim of `asked` slots failed; the next one waits until `retry_at`.
    fn failed(&mut self, asked: usize, retry_at: tokio::time::Instant) {
        self.asked -= asked;
        self.in_flight -= 1;
        self.retry_at = Some(retry_at);
    }
}

/// A claim's answer: slots asked for, the wake-up count when it left, and the steps.
type Claimed = (usize, u64, Result<Vec<ClaimedStep>, StoreError>);

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Exponential backoff with jitter for waiting out an unreachable database.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { next: Duration::from_millis(100) }
    }
    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
    fn next_delay(&mut self) -> Duration {
        let d = self.next.mul_f64(0.5 + fastrand::f64() / 2.0);
        self.next = (self.next * 2).min(Duration::from_secs(5));
        d
    }
    async fn sleep(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}
