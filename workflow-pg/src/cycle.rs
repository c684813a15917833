//! The worker's hot path: one statement (`CYCLE`) that records a batch of
//! plain completions and claims the next batch, in one round trip and one
//! commit.
//!
//! A worker whose steps finished has free slots; recording the results and
//! asking for new work used to be two statements, each an autocommit
//! transaction of its own. Together they cost one commit, one protocol
//! exchange and one executor start-up fewer per batch (in
//! `scripts/bench-statements`, from no change to a third less server CPU
//! per step depending on batch size and clients: docs/benchmarks.md).
//! Either half may be empty: a plain claim passes no completions, a plain
//! completion a limit of 0. Every modifying CTE of one statement sees the
//! same snapshot, so the claim never sees what the completions promoted:
//! the worker claims those next (the store tells it how many there were).
//!
//! The completion half alone (`COMPLETE_FAST`) also records a transactional
//! step's result inside the step's own transaction (`steps::complete_on`).

use crate::interpret;
use crate::steps::{conflict_pause, millis, notify};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;
use workflow_core::store::*;
use workflow_core::{Lease, RetryPolicy, RunId, StepId, StoreError};

/// Records successes ($1 step ids, $2 their lease tokens, $3 their outputs,
/// matched by position): steps, leases, events, promotion of dependents
/// whose last upstream this was (locked in id order), and each run's
/// counters. Its CTEs: `done` (the steps recorded) and `promo` (dependents
/// now ready or still blocked).
macro_rules! complete_ctes {
    () => {
        r#"done AS (
    UPDATE wf.steps s
    SET status = 'succeeded', output = ($3::jsonb[])[array_position($1::bigint[], s.id)],
        finished_at = clock_timestamp(), lease_expires_at = NULL
    -- "Still running under this token" (lease_expires_at is set exactly
    -- while a step runs, by the table's CHECK). Each row finds its token
    -- and output by its position in the arrays: a join with unnest() would
    -- be a nested loop that reads the arrays again for every row (hash
    -- joins are off, see ENGINE_SESSION).
    WHERE s.id = ANY($1) AND s.lease_token = ($2::bigint[])[array_position($1::bigint[], s.id)]
      AND s.lease_expires_at IS NOT NULL
    RETURNING s.id, s.run_id, s.attempt, s.worker_id, s.lease_token,
              (extract(epoch FROM s.finished_at - s.started_at) * 1000)::bigint AS ms
), unleased AS (
    DELETE FROM wf.leases l WHERE l.step_id = ANY(ARRAY(SELECT id FROM done))
), ev AS (
    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt, worker_id, lease_token, duration_ms)
    SELECT run_id, id, 'succeeded', 'running', 'succeeded', attempt, worker_id, lease_token, ms FROM done
), agg AS MATERIALIZED (
    -- One row: the dependents and how many of their upstreams ended here.
    SELECT array_agg(step_id) AS ids, array_agg(n) AS ns FROM (
        SELECT d.step_id, count(*)::int AS n FROM wf.step_deps d
        WHERE d.depends_on = ANY(ARRAY(SELECT id FROM done)) GROUP BY d.step_id
    ) g
), locked AS MATERIALIZED (
    SELECT s.id FROM wf.steps s
    WHERE s.id = ANY((SELECT ids FROM agg)::bigint[]) AND s.status = 'blocked' ORDER BY s.id FOR UPDATE OF s
), promo AS (
    UPDATE wf.steps s
    SET pending_deps = s.pending_deps - a.ns[array_position(a.ids, s.id)],
        status = CASE WHEN s.pending_deps = a.ns[array_position(a.ids, s.id)] THEN 'ready'
                      ELSE 'blocked' END::wf.step_state,
        -- The statement's clock, not the transaction's: a transactional
        -- step's transaction may have been open a while (see ClaimHints).
        available_at = clock_timestamp()
    FROM agg a
    WHERE s.id = ANY(ARRAY(SELECT id FROM locked))
    RETURNING s.id, s.run_id, s.status, s.attempt, s.queue, s.step_type, s.available_at
), queued AS (
    INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
    SELECT id, queue, step_type, available_at FROM promo WHERE status = 'ready'
), pev AS (
    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt)
    SELECT run_id, id, 'deps_met', 'blocked', 'ready', attempt FROM promo WHERE status = 'ready'
), per_run AS MATERIALIZED (
    -- One row: the runs and how many of their steps ended here.
    SELECT array_agg(run_id) AS ids, array_agg(n) AS ns FROM (
        SELECT run_id, count(*)::int AS n FROM done GROUP BY run_id
    ) g
), runs AS (
    UPDATE wf.runs r
    SET remaining = r.remaining - d.ns[array_position(d.ids, r.id)],
        started_at = COALESCE(r.started_at, (SELECT min(e.at) FROM wf.step_events e
                                             WHERE e.run_id = r.id AND e.event = 'claimed')),
        status = CASE WHEN r.status = 'cancelled' THEN r.status
                      WHEN r.remaining > d.ns[array_position(d.ids, r.id)] THEN 'running'
                      WHEN r.cancelled_steps > 0 THEN 'cancelled'
                      WHEN r.failed_steps > 0 THEN 'failed'
                      ELSE 'succeeded' END::wf.run_state,
        finished_at = CASE WHEN r.status = 'cancelled' THEN r.finished_at
                           WHEN r.remaining > d.ns[array_position(d.ids, r.id)] THEN NULL
                           ELSE clock_timestamp() END
    FROM per_run d
    WHERE r.id = ANY((SELECT ids FROM per_run)::uuid[])
)"#
    };
}

/// Claims up to $6 ready steps of queue $4 and types $5 for worker $7, with
/// a lease of $8 ms on the database clock: the [`ClaimHints`] window
/// (`available_at` in [$9, $10)) first, then the queue from just after the
/// key ($10, $11). Its CTE `claimed` holds the steps now leased.
macro_rules! claim_ctes {
    () => {
        r#"late AS MATERIALIZED (
    SELECT ctid FROM wf.ready_queue
    WHERE queue = $4 AND available_at >= $9 AND available_at < $10 AND step_type = ANY($5)
    ORDER BY available_at, step_id
    LIMIT $6
    FOR UPDATE SKIP LOCKED
), next AS MATERIALIZED (
    SELECT ctid FROM wf.ready_queue
    WHERE queue = $4 AND (available_at, step_id) > ($10, $11) AND available_at <= now() AND step_type = ANY($5)
    ORDER BY available_at, step_id
    LIMIT $6 - (SELECT count(*) FROM late)
    FOR UPDATE SKIP LOCKED
), taken AS (
    -- By the rows' addresses (locked above, so they stay put): no index
    -- to choose. Looked up by step_id, a plan made while the queue was
    -- empty went through ready_queue_order, whose leading column is the
    -- queue, and read the whole index for every claim.
    DELETE FROM wf.ready_queue q
    WHERE q.ctid = ANY(ARRAY(SELECT ctid FROM late UNION ALL SELECT ctid FROM next))
    RETURNING q.step_id
), claimed AS (
    UPDATE wf.steps s
    SET status = 'running', worker_id = $7, attempt = s.attempt + 1, lease_token = s.lease_token + 1,
        lease_expires_at = now() + $8 * interval '1 millisecond', started_at = clock_timestamp(),
        finished_at = NULL
    WHERE s.id = ANY(ARRAY(SELECT step_id FROM taken)) AND s.status = 'ready'
    RETURNING s.id, s.run_id, s.name, s.step_type, s.definition, s.attempt, s.max_attempts, s.timeout_ms,
              s.backoff_ms, s.backoff_max_ms, s.lease_token, s.n_deps, s.available_at
), leased AS (
    INSERT INTO wf.leases (step_id) SELECT id FROM claimed
), claimed_ev AS (
    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt, worker_id, lease_token)
    SELECT run_id, id, 'claimed', 'ready', 'running', attempt, $7, lease_token FROM claimed
)"#
    };
}

/// The completion half alone; returns the steps recorded (`false`) and the
/// dependents made ready (`true`).
pub(crate) const COMPLETE_FAST: &str = concat!(
    "WITH ",
    complete_ctes!(),
    "
SELECT id, lease_token, false AS promoted FROM done
UNION ALL
SELECT id, 0, true FROM promo WHERE status = 'ready'"
);

/// The steps of `claimed` as the worker needs them: definition, policy,
/// run, and the outputs of their upstreams (kind 2 of [`CYCLE`]).
macro_rules! claimed_rows {
    () => {
        "
SELECT 2 AS kind, c.id AS id, c.lease_token AS lease_token, c.run_id AS run_id, c.name AS name,
       c.step_type AS step_type, c.definition AS definition, c.attempt AS attempt, c.max_attempts AS max_attempts,
       c.timeout_ms AS timeout_ms, c.backoff_ms AS backoff_ms, c.backoff_max_ms AS backoff_max_ms,
       r.workflow AS workflow, r.correlation_id AS correlation_id,
       CASE WHEN c.n_deps > 0 THEN (
           SELECT jsonb_object_agg(u.name, u.output) FROM wf.steps u
           WHERE u.id = ANY(ARRAY(SELECT d.depends_on FROM wf.step_deps d WHERE d.step_id = c.id))) END AS upstream,
       c.available_at AS available_at
FROM claimed c CROSS JOIN LATERAL (
    SELECT r.workflow, r.correlation_id FROM wf.runs r WHERE r.id = c.run_id OFFSET 0
) r"
    };
}

/// Both halves. One row per step recorded (kind 0), per dependent made
/// ready (kind 1), and per step claimed (kind 2).
pub(crate) const CYCLE: &str = concat!(
    "WITH ",
    complete_ctes!(),
    ",\n",
    claim_ctes!(),
    "
SELECT 0 AS kind, id, lease_token, NULL::uuid AS run_id, NULL::text AS name, NULL::text AS step_type,
       NULL::jsonb AS definition, NULL::int4 AS attempt, NULL::int4 AS max_attempts, NULL::int8 AS timeout_ms,
       NULL::int8 AS backoff_ms, NULL::int8 AS backoff_max_ms, NULL::text AS workflow,
       NULL::text AS correlation_id, NULL::jsonb AS upstream, NULL::timestamptz AS available_at
FROM done
UNION ALL
SELECT 1, id, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM promo WHERE status = 'ready'
UNION ALL",
    claimed_rows!()
);

/// The claim half alone, for a claim with no results to record: the
/// pickup path of an idle worker, which should not start up the executor
/// for the completion's dozen nodes (a quarter of a millisecond more at the
/// median). It takes [`CYCLE`]'s parameters and leaves $1-$3 unused.
pub(crate) const CLAIM: &str = concat!("WITH ", claim_ctes!(), claimed_rows!());

/// One row of [`CYCLE`]; the columns after `lease_token` are set for claimed steps only.
#[derive(sqlx::FromRow)]
struct CycleRow {
    kind: i32,
    id: i64,
    lease_token: i64,
    run_id: Option<Uuid>,
    name: Option<String>,
    step_type: Option<String>,
    definition: Option<serde_json::Value>,
    attempt: Option<i32>,
    max_attempts: Option<i32>,
    timeout_ms: Option<i64>,
    backoff_ms: Option<i64>,
    backoff_max_ms: Option<i64>,
    workflow: Option<String>,
    correlation_id: Option<String>,
    upstream: Option<sqlx::types::Json<BTreeMap<String, serde_json::Value>>>,
    available_at: Option<DateTime<Utc>>,
}

impl CycleRow {
    /// Moves the columns out (the definition and the upstream outputs can
    /// be large: no copies on the hot path).
    fn into_claimed(self) -> Result<(ClaimedStep, DateTime<Utc>), StoreError> {
        let id = self.id;
        let missing = || StoreError::Corrupt(format!("claimed step {id} came back without its columns"));
        let claimed = ClaimedStep {
            lease: Lease { step: StepId(id), token: self.lease_token },
            run_id: RunId(self.run_id.ok_or_else(missing)?),
            name: self.name.ok_or_else(missing)?,
            step_type: self.step_type.ok_or_else(missing)?,
            definition: self.definition.ok_or_else(missing)?,
            attempt: self.attempt.ok_or_else(missing)? as u32,
            retry: RetryPolicy {
                max_attempts: self.max_attempts.ok_or_else(missing)? as u32,
                initial_backoff: Duration::from_millis(self.backoff_ms.ok_or_else(missing)? as u64),
                max_backoff: Duration::from_millis(self.backoff_max_ms.ok_or_else(missing)? as u64),
                timeout: self.timeout_ms.map(|t| Duration::from_millis(t as u64)),
            },
            workflow: self.workflow.ok_or_else(missing)?,
            correlation_id: self.correlation_id.ok_or_else(missing)?,
            upstream: self.upstream.map(|j| j.0).unwrap_or_default(),
        };
        Ok((claimed, self.available_at.ok_or_else(missing)?))
    }
}

/// Where this store's claims of each queue got to in `wf.ready_queue`.
///
/// A claim walks `ready_queue_order` in (`available_at`, `step_id`) order, and the
/// steps claimed since the last VACUUM leave their dead entries at the head
/// of that order: after 100k claims an empty-queue claim read 495 index
/// pages (2.7 ms), and every claim of a busy queue paid that walk. So a
/// claim reads two ranges: from just after the newest key this store
/// claimed in that queue, and the [`HINT_MARGIN`] of `available_at` before
/// it, for steps made ready by transactions that were still open when
/// that key was claimed (promotions take the statement's clock, so they
/// land within it). Once every [`FULL_SCAN_EVERY`] a claim walks the queue
/// from the head instead, in FIFO order: a step that became ready further
/// behind the hint waits at most until then.
#[derive(Debug, Default)]
pub(crate) struct ClaimHints {
    by_queue: Mutex<HashMap<String, Hint>>,
}

#[derive(Debug)]
struct Hint {
    newest: (DateTime<Utc>, i64),
    full_scan_at: Instant,
}

/// How much `available_at` before the hint a hinted claim also reads.
pub(crate) const HINT_MARGIN: Duration = Duration::from_millis(250);
/// How often a claim walks its queue from the head regardless of the hint.
pub(crate) const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);

impl ClaimHints {
    /// The key the next claim of `queue` reads from, or `None` for a walk
    /// from the head.
    fn floor(&self, queue: &str) -> Option<(DateTime<Utc>, i64)> {
        let map = self.by_queue.lock().expect("claim hints");
        let h = map.get(queue)?;
        (h.full_scan_at.elapsed() < FULL_SCAN_EVERY).then_some(h.newest)
    }

    fn record(&self, queue: &str, full_scan: bool, newest: Option<(DateTime<Utc>, i64)>) {
        let mut map = self.by_queue.lock().expect("claim hints");
        match map.get_mut(queue) {
            Some(h) => {
                if full_scan {
                    h.full_scan_at = Instant::now();
                }
                if let Some(n) = newest {
                    h.newest = h.newest.max(n);
                }
            }
            None if full_scan => {
                let newest = newest.unwrap_or((DateTime::UNIX_EPOCH, 0));
                map.insert(queue.to_owned(), Hint { newest, full_scan_at: Instant::now() });
            }
            None => {}
        }
    }
}

/// Plain completions as the statements' three arrays.
#[derive(Default)]
struct Outputs {
    ids: Vec<i64>,
    tokens: Vec<i64>,
    values: Vec<serde_json::Value>,
}

impl Outputs {
    /// The items' outputs, moved (they can be large); the items back if
    /// some item expands (a fan-out is not a plain completion).
    fn of(items: Vec<StepCompletion>) -> Result<Self, Vec<StepCompletion>> {
        if !items.iter().all(|it| matches!(it.completion, Completion::Output(_))) {
            return Err(items);
        }
        let mut o = Self::default();
        for it in items {
            if let Completion::Output(v) = it.completion {
                o.ids.push(it.lease.step.0);
                o.tokens.push(it.lease.token);
                o.values.push(v);
            }
        }
        Ok(o)
    }
}

/// What one [`CYCLE`] statement did.
#[derive(Default)]
struct Cycled {
    /// (step, token) of the completions recorded.
    accepted: HashSet<(i64, i64)>,
    promoted: usize,
    claimed: Vec<ClaimedStep>,
}

/// Runs [`CYCLE`] once (or [`CLAIM`], with nothing to record): records
/// `done` (may be empty) and claims up to `limit` steps of `queue` (may be
/// 0). A deadlock or serialization failure is retried: the statement is its
/// own transaction.
async fn cycle(
    conn: &mut PgConnection,
    hints: &ClaimHints,
    done: &Outputs,
    claim: &StepsClaim,
    queue: &str,
    limit: i64,
) -> Result<Cycled, StoreError> {
    let floor = hints.floor(queue);
    // A walk from the head: an empty late window, then every key.
    let (at, id) = floor.unwrap_or((DateTime::UNIX_EPOCH, 0));
    let late_from = if floor.is_some() { at - HINT_MARGIN } else { at };
    let mut tries = 0;
    let rows: Vec<CycleRow> = loop {
        tries += 1;
        let sql = if done.ids.is_empty() && limit > 0 { CLAIM } else { CYCLE };
        let r = sqlx::query_as(sql)
            .bind(&done.ids)
            .bind(&done.tokens)
            .bind(&done.values)
            .bind(queue)
            .bind(&claim.step_types)
            .bind(limit)
            .bind(claim.worker.0)
            .bind(millis(claim.lease_ttl))
            .bind(late_from)
            .bind(at)
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(interpret);
        match r {
            Err(StoreError::Unavailable(m)) if m.starts_with("transaction conflict") && tries < 8 => {
                tokio::time::sleep(conflict_pause(tries)).await;
            }
            r => break r?,
        }
    };
    let mut out = Cycled::default();
    let mut newest = None;
    for row in rows {
        match row.kind {
            0 => {
                out.accepted.insert((row.id, row.lease_token));
            }
            1 => out.promoted += 1,
            _ => {
                let (step, available_at) = row.into_claimed()?;
                newest = newest.max(Some((available_at, step.lease.step.0)));
                out.claimed.push(step);
            }
        }
    }
    if limit > 0 {
        hints.record(queue, floor.is_none(), newest);
    }
    out.claimed.sort_by_key(|c| c.lease.step);
    Ok(out)
}

/// Claims up to `limit` ready steps of the given queues (one statement per
/// queue, in order, until the limit is reached) and types, with the outputs
/// of their upstream steps. `done`, if any, rides on the first statement.
async fn claim_on(
    conn: &mut PgConnection,
    hints: &ClaimHints,
    p: &StepsClaim,
    mut done: Option<&Outputs>,
) -> Result<Cycled, StoreError> {
    let mut total = Cycled::default();
    let none = Outputs::default();
    for (i, queue) in p.queues.iter().enumerate() {
        let left = i64::from(p.limit) - total.claimed.len() as i64;
        if left <= 0 && done.is_none() {
            break;
        }
        let r = match cycle(conn, hints, done.take().unwrap_or(&none), p, queue, left.max(0)).await {
            Ok(r) => r,
            Err(e) if i == 0 => return Err(e),
            // What the earlier statements recorded and claimed is committed:
            // report it (an error would have the caller retry completions
            // already made and never run the steps it holds).
            Err(e) => {
                tracing::warn!(error = %e, queue = %queue, "claim of a further queue failed");
                break;
            }
        };
        total.accepted.extend(r.accepted);
        total.promoted += r.promoted;
        total.claimed.extend(r.claimed);
    }
    Ok(total)
}

/// [`Store::steps_claim`](workflow_core::Store::steps_claim).
pub(crate) async fn claim(pool: &PgPool, hints: &ClaimHints, p: StepsClaim) -> Result<Vec<ClaimedStep>, StoreError> {
    let mut conn = pool.acquire().await.map_err(interpret)?;
    Ok(claim_on(&mut conn, hints, &p, None).await?.claimed)
}

/// [`Store::steps_complete`](workflow_core::Store::steps_complete): plain
/// completions and the claim in one [`CYCLE`] statement (no BEGIN/COMMIT
/// round trips). A batch with a fan-out is recorded in a transaction of its
/// own (`steps::complete_on`), and the claim follows its commit. The
/// wake-up, when needed, follows the commit, so woken workers already see
/// the promoted steps.
pub(crate) async fn complete_batch(
    pool: &PgPool,
    hints: &ClaimHints,
    p: StepsComplete,
) -> Result<StepsCompleted, StoreError> {
    let leases: Vec<Lease> = p.items.iter().map(|i| i.lease).collect();
    let (accepted, promoted, claimed) = match Outputs::of(p.items) {
        Ok(done) => {
            let mut conn = pool.acquire().await.map_err(interpret)?;
            let no_claim = StepsClaim {
                worker: p.worker,
                queues: vec![String::new()],
                step_types: Vec::new(),
                limit: 0,
                lease_ttl: Duration::ZERO,
            };
            let r = claim_on(&mut conn, hints, p.claim.as_ref().unwrap_or(&no_claim), Some(&done)).await?;
            if r.promoted > p.notify_above {
                notify(&mut conn).await?;
            }
            (r.accepted, r.promoted, r.claimed)
        }
        Err(items) => {
            let r = crate::steps::with_tx(pool, |conn| {
                Box::pin(crate::steps::complete_on(conn, items.clone(), p.notify_above))
            })
            .await?;
            // The completions are committed: a failed claim now only means
            // nothing claimed (the worker claims again), never a retry of
            // results already recorded.
            let claimed = match &p.claim {
                Some(c) => match claim(pool, hints, c.clone()).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "claim after a fan-out completion failed");
                        Vec::new()
                    }
                },
                None => Vec::new(),
            };
            let accepted = r.completed.iter().map(|l| (l.step.0, l.token)).collect();
            (accepted, r.promoted, claimed)
        }
    };
    let (completed, rejected) = leases.into_iter().partition(|l| accepted.contains(&(l.step.0, l.token)));
    Ok(StepsCompleted { completed, rejected, promoted, claimed })
}

/// The completion half alone, inside the caller's transaction (a
/// transactional step's own); a wake-up when more than `notify_above`
/// dependents became ready.
pub(crate) async fn complete_fast(
    conn: &mut PgConnection,
    items: Vec<StepCompletion>,
    notify_above: usize,
) -> Result<StepsCompleted, StoreError> {
    let leases: Vec<Lease> = items.iter().map(|i| i.lease).collect();
    let done = Outputs::of(items).map_err(|_| StoreError::Other("a fan-out is not a plain completion".into()))?;
    let rows: Vec<(i64, i64, bool)> = sqlx::query_as(COMPLETE_FAST)
        .bind(&done.ids)
        .bind(&done.tokens)
        .bind(&done.values)
        .fetch_all(&mut *conn)
        .await
        .map_err(interpret)?;
    let accepted: HashSet<(i64, i64)> = rows.iter().filter(|r| !r.2).map(|r| (r.0, r.1)).collect();
    let promoted = rows.iter().filter(|r| r.2).count();
    if promoted > notify_above {
        notify(conn).await?;
    }
    let (completed, rejected) = leases.into_iter().partition(|l| accepted.contains(&(l.step.0, l.token)));
    Ok(StepsCompleted { completed, rejected, promoted, claimed: Vec::new() })
}
