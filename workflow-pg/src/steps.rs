//! Steps: heartbeat, fan-out completion, fail, release, rescue, fan-in,
//! and inserting a run's steps. (The hot path, claims and plain
//! completions, is in `cycle`.)
//!
//! Every transition is guarded in its `WHERE` clause (`status = 'running'
//! AND lease_token = $token` for a leased step); a guard that matches no row
//! is a lost lease, never an overwrite. Fan-in goes through counters:
//! each step's `pending_deps` and each run's `remaining` are decremented
//! with `UPDATE ... RETURNING` in the completing transaction, so two last
//! upstreams finishing at once serialise on the dependent's row lock.

use crate::error::is_conflict;
use crate::interpret;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use uuid::Uuid;
use workflow_core::store::*;
use workflow_core::{Lease, StepId, StepState, StoreError};

/// Extends the exact (id, token) pairs; returns those that still hold.
/// Touches only `lease_expires_at`, which no index covers: a HOT update.
pub(crate) async fn extend(pool: &PgPool, p: LeasesExtend) -> Result<Vec<Lease>, StoreError> {
    let (ids, tokens) = split(&p.leases);
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE wf.steps s SET lease_expires_at = now() + $3 * interval '1 millisecond'
         WHERE s.id = ANY($1) AND s.lease_token = ($2::bigint[])[array_position($1::bigint[], s.id)]
           AND s.status = 'running'
         RETURNING s.id, s.lease_token",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(millis(p.lease_ttl))
    .fetch_all(pool)
    .await
    .map_err(interpret)?;
    Ok(rows.into_iter().map(|(id, token)| Lease { step: StepId(id), token }).collect())
}

const COMPLETE: &str = r#"
WITH done AS (
    UPDATE wf.steps s
    SET status = 'succeeded', output = ($3::jsonb[])[array_position($1::bigint[], s.id)],
        finished_at = clock_timestamp(), lease_expires_at = NULL
    -- As in COMPLETE_FAST: still running under this token, the token and
    -- output found by position.
    WHERE s.id = ANY($1) AND s.lease_token = ($2::bigint[])[array_position($1::bigint[], s.id)]
      AND s.lease_expires_at IS NOT NULL
    RETURNING s.id, s.run_id, s.name, s.attempt, s.worker_id, s.lease_token,
              ($4::bool[])[array_position($1::bigint[], s.id)] AS expanded,
              (extract(epoch FROM s.finished_at - s.started_at) * 1000)::bigint AS ms
), unleased AS (
    DELETE FROM wf.leases l WHERE l.step_id = ANY(ARRAY(SELECT id FROM done))
), ev AS (
    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt, worker_id, lease_token, duration_ms)
    SELECT run_id, id, CASE WHEN expanded THEN 'expanded' ELSE 'succeeded' END, 'running', 'succeeded',
           attempt, worker_id, lease_token, ms
    FROM done
)
SELECT id, run_id, name, lease_token FROM done ORDER BY id
"#;

/// Completes steps inside the caller's open transaction: records results,
/// inserts fan-out children, promotes dependents, updates run counters.
pub(crate) async fn complete_on(
    conn: &mut PgConnection,
    items: Vec<StepCompletion>,
    notify_above: usize,
) -> Result<StepsCompleted, StoreError> {
    if items.iter().all(|i| matches!(i.completion, Completion::Output(_))) {
        return crate::cycle::complete_fast(conn, items, notify_above).await;
    }
    let mut ids = Vec::with_capacity(items.len());
    let mut tokens = Vec::with_capacity(items.len());
    let mut outputs = Vec::with_capacity(items.len());
    let mut expanded = Vec::with_capacity(items.len());
    let mut children: HashMap<i64, Vec<NewStep>> = HashMap::new();
    for it in &items {
        ids.push(it.lease.step.0);
        tokens.push(it.lease.token);
        match &it.completion {
            Completion::Output(v) => {
                outputs.push(v.clone());
                expanded.push(false);
            }
            Completion::Expand(c) => {
                let names: Vec<&str> = c.iter().map(|s| s.name.as_str()).collect();
                outputs.push(serde_json::json!({ "children": names }));
                expanded.push(true);
                children.insert(it.lease.step.0, c.clone());
            }
        }
    }
    let done: Vec<(i64, Uuid, String, i64)> = sqlx::query_as(COMPLETE)
        .bind(&ids)
        .bind(&tokens)
        .bind(&outputs)
        .bind(&expanded)
        .fetch_all(&mut *conn)
        .await
        .map_err(interpret)?;
    let accepted: std::collections::HashSet<(i64, i64)> = done.iter().map(|d| (d.0, d.3)).collect();
    let mut deltas = RunDeltas::default();
    let mut promoted = 0usize;
    for (id, run, _, _) in &done {
        deltas.ended(*run, false);
        if let Some(kids) = children.remove(id) {
            promoted += expand(conn, *id, *run, &kids, &mut deltas).await?;
        }
    }
    let ended: Vec<(i64, bool)> = done.iter().map(|d| (d.0, true)).collect();
    promoted += propagate(conn, ended, &mut deltas).await?;
    deltas.apply(conn).await?;
    if promoted > notify_above {
        notify(conn).await?;
    }
    let (completed, rejected) = items.iter().map(|i| i.lease).partition(|l| accepted.contains(&(l.step.0, l.token)));
    Ok(StepsCompleted { completed, rejected, promoted, claimed: Vec::new() })
}

/// Inserts a fanned-out step's children (ready at once) and makes the
/// parent's dependents wait for them too. Returns how many became ready.
async fn expand(
    conn: &mut PgConnection,
    parent: i64,
    run: Uuid,
    kids: &[NewStep],
    deltas: &mut RunDeltas,
) -> Result<usize, StoreError> {
    let ids = insert_steps(conn, run, Some(parent), kids).await?;
    let child_ids: Vec<i64> = ids.values().copied().collect();
    sqlx::query(
        "INSERT INTO wf.step_deps (step_id, depends_on)
         SELECT d.step_id, c FROM wf.step_deps d CROSS JOIN unnest($2::bigint[]) AS c WHERE d.depends_on = $1",
    )
    .bind(parent)
    .bind(&child_ids)
    .execute(&mut *conn)
    .await
    .map_err(interpret)?;
    sqlx::query(
        "UPDATE wf.steps SET pending_deps = pending_deps + $2, n_deps = n_deps + $2
         WHERE id = ANY(ARRAY(SELECT step_id FROM wf.step_deps WHERE depends_on = $1)) AND status = 'blocked'",
    )
    .bind(parent)
    .bind(child_ids.len() as i32)
    .execute(&mut *conn)
    .await
    .map_err(interpret)?;
    deltas.added(run, kids.len() as i32);
    Ok(kids.len())
}

const PROPAGATE: &str = r#"
WITH ended AS (
    SELECT * FROM unnest($1::bigint[], $2::bool[]) AS t(id, ok)
), agg AS (
    SELECT d.step_id, count(*)::int AS n, (count(*) FILTER (WHERE NOT e.ok))::int AS bad
    FROM wf.step_deps d JOIN ended e ON e.id = d.depends_on
    WHERE d.depends_on = ANY($1)
    GROUP BY d.step_id
), locked AS MATERIALIZED (
    SELECT s.id FROM wf.steps s
    WHERE s.id = ANY(ARRAY(SELECT step_id FROM agg)) AND s.status = 'blocked' ORDER BY s.id FOR UPDATE OF s
), upd AS (
    UPDATE wf.steps s
    SET pending_deps = s.pending_deps - agg.n,
        failed_deps = s.failed_deps + agg.bad,
        status = CASE
            WHEN s.trigger = 'all_succeeded' AND s.failed_deps + agg.bad > 0 THEN 'upstream_failed'
            WHEN s.pending_deps - agg.n = 0 THEN 'ready'
            ELSE 'blocked' END::wf.step_state,
        available_at = clock_timestamp(),
        finished_at = CASE WHEN s.trigger = 'all_succeeded' AND s.failed_deps + agg.bad > 0
                           THEN clock_timestamp() END
    FROM agg
    WHERE s.id = ANY(ARRAY(SELECT id FROM locked)) AND s.id = agg.step_id
    RETURNING s.id, s.run_id, s.status, s.attempt, s.queue, s.step_type, s.available_at
), queued AS (
    INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
    SELECT id, queue, step_type, available_at FROM upd WHERE status = 'ready'
), ev AS (
    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt)
    SELECT run_id, id, CASE WHEN status = 'ready' THEN 'deps_met' ELSE 'upstream_failed' END, 'blocked', status, attempt
    FROM upd WHERE status <> 'blocked'
)
SELECT id, run_id, status::text FROM upd WHERE status <> 'blocked'
"#;

/// Tells the dependents of `ended` steps (id, succeeded) that an upstream
/// ended, transitively for upstream failures. Returns how many became ready.
pub(crate) async fn propagate(
    conn: &mut PgConnection,
    mut ended: Vec<(i64, bool)>,
    deltas: &mut RunDeltas,
) -> Result<usize, StoreError> {
    let mut promoted = 0;
    while !ended.is_empty() {
        let (ids, oks): (Vec<i64>, Vec<bool>) = ended.drain(..).unzip();
        let rows: Vec<(i64, Uuid, String)> =
            sqlx::query_as(PROPAGATE).bind(&ids).bind(&oks).fetch_all(&mut *conn).await.map_err(interpret)?;
        for (id, run, status) in rows {
            if status == "ready" {
                promoted += 1;
            } else {
                deltas.ended(run, true);
                ended.push((id, false));
            }
        }
    }
    Ok(promoted)
}

const FAIL: &str = r#"
WITH upd AS (
    UPDATE wf.steps
    SET status = CASE WHEN $3 AND attempt < max_attempts THEN 'ready' ELSE 'failed' END::wf.step_state,
        available_at = now() + $4 * interval '1 millisecond',
        lease_expires_at = NULL,
        last_error = $5,
        finished_at = CASE WHEN $3 AND attempt < max_attempts THEN NULL ELSE clock_timestamp() END
    WHERE id = $1 AND lease_token = $2 AND status = 'running'
    RETURNING id, run_id, status, attempt, worker_id, lease_token, queue, step_type, available_at,
              (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint AS ms
), unleased AS (
    DELETE FROM wf.leases l WHERE l.step_id = ANY(ARRAY(SELECT id FROM upd))
), queued AS (
    INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
    SELECT id, queue, step_type, available_at FROM upd WHERE status = 'ready'
), ev AS (
    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt, worker_id, lease_token, duration_ms, error)
    SELECT run_id, id, $6, 'running', status, attempt, worker_id, lease_token, ms, $5 FROM upd
)
SELECT run_id, status::text FROM upd
"#;

/// Records a failed attempt: back to ready after a backoff, or failed (and
/// its dependents told).
pub(crate) async fn fail(pool: &PgPool, p: StepFail) -> Result<StepState, StoreError> {
    with_tx(pool, |conn| {
        let p = p.clone();
        Box::pin(async move {
            let event = match p.kind {
                FailKind::Error => "failed",
                FailKind::Timeout => "timed_out",
            };
            let row: Option<(Uuid, String)> = sqlx::query_as(FAIL)
                .bind(p.lease.step.0)
                .bind(p.lease.token)
                .bind(p.retry_in.is_some())
                .bind(p.retry_in.map(millis).unwrap_or(0))
                .bind(&p.error)
                .bind(event)
                .fetch_optional(&mut *conn)
                .await
                .map_err(interpret)?;
            let Some((run, status)) = row else {
                return Err(StoreError::LeaseLost { step: p.lease.step.0, token: p.lease.token });
            };
            let status = parse_status(&status)?;
            if status == StepState::Failed {
                let mut deltas = RunDeltas::default();
                deltas.ended(run, true);
                propagate(conn, vec![(p.lease.step.0, false)], &mut deltas).await?;
                deltas.apply(conn).await?;
            }
            Ok(status)
        })
    })
    .await
}

/// Gives leases back: ready at once, the attempt not counted.
pub(crate) async fn release(pool: &PgPool, p: StepsRelease) -> Result<usize, StoreError> {
    let (ids, tokens) = split(&p.leases);
    with_tx(pool, |conn| {
        let (ids, tokens) = (ids.clone(), tokens.clone());
        Box::pin(async move {
            let n: Vec<(i64,)> = sqlx::query_as(
                "WITH upd AS (
                    UPDATE wf.steps s
                    SET status = 'ready', attempt = s.attempt - 1, lease_expires_at = NULL, available_at = now()
                    WHERE s.id = ANY($1) AND s.lease_token = ($2::bigint[])[array_position($1::bigint[], s.id)]
                      AND s.status = 'running'
                    RETURNING s.id, s.run_id, s.attempt, s.worker_id, s.lease_token, s.queue, s.step_type,
                              s.available_at, (extract(epoch FROM clock_timestamp() - s.started_at) * 1000)::bigint AS ms
                 ), unleased AS (
                    DELETE FROM wf.leases l WHERE l.step_id = ANY(ARRAY(SELECT id FROM upd))
                 ), queued AS (
                    INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
                    SELECT id, queue, step_type, available_at FROM upd
                 ), ev AS (
                    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt, worker_id, lease_token, duration_ms)
                    SELECT run_id, id, 'released', 'running', 'ready', attempt + 1, worker_id, lease_token, ms FROM upd
                 )
                 SELECT id FROM upd",
            )
            .bind(&ids)
            .bind(&tokens)
            .fetch_all(&mut *conn)
            .await
            .map_err(interpret)?;
            if !n.is_empty() {
                notify(conn).await?;
            }
            Ok(n.len())
        })
    })
    .await
}

const RESCUE: &str = r#"
WITH x AS MATERIALIZED (
    -- Driven by the lease rows (the running steps), never by a walk of
    -- wf.steps: a join here let a plan read the whole steps index instead.
    SELECT s.id FROM wf.steps s
    WHERE s.id = ANY(ARRAY(SELECT step_id FROM wf.leases))
      AND s.status = 'running' AND s.lease_expires_at < now()
    ORDER BY s.id LIMIT $1
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE wf.steps s
    SET status = CASE WHEN s.attempt < s.max_attempts THEN 'ready' ELSE 'failed' END::wf.step_state,
        lease_expires_at = NULL,
        available_at = now(),
        last_error = 'lease expired: worker ' || s.worker_id || ' stopped heartbeating',
        finished_at = CASE WHEN s.attempt < s.max_attempts THEN NULL ELSE clock_timestamp() END
    WHERE s.id = ANY(ARRAY(SELECT id FROM x))
    RETURNING s.id, s.run_id, s.status, s.attempt, s.worker_id, s.lease_token, s.last_error, s.queue, s.step_type,
              s.available_at, (extract(epoch FROM clock_timestamp() - s.started_at) * 1000)::bigint AS ms
), unleased AS (
    DELETE FROM wf.leases l WHERE l.step_id = ANY(ARRAY(SELECT id FROM upd))
), queued AS (
    INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
    SELECT id, queue, step_type, available_at FROM upd WHERE status = 'ready'
), ev AS (
    INSERT INTO wf.step_events (run_id, step_id, event, from_status, to_status, attempt, worker_id, lease_token, duration_ms, error)
    SELECT run_id, id, 'lease_expired', 'running', status, attempt, worker_id, lease_token, ms, last_error FROM upd
)
SELECT id, run_id, status::text FROM upd
"#;

/// Returns expired leases to ready, or to failed when attempts are exhausted.
/// One rescuer at a time: the others skip their turn instead of scanning
/// the running steps again.
pub(crate) async fn rescue(pool: &PgPool, limit: u32) -> Result<Rescued, StoreError> {
    with_tx(pool, |conn| {
        Box::pin(async move {
            let (mine,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock(hashtext('wf.rescue'))")
                .fetch_one(&mut *conn)
                .await
                .map_err(interpret)?;
            if !mine {
                return Ok(Rescued::default());
            }
            let rows: Vec<(i64, Uuid, String)> =
                sqlx::query_as(RESCUE).bind(i64::from(limit)).fetch_all(&mut *conn).await.map_err(interpret)?;
            let mut r = Rescued::default();
            let mut deltas = RunDeltas::default();
            let mut failed = Vec::new();
            for (id, run, status) in rows {
                if status == "ready" {
                    r.retried += 1;
                } else {
                    r.failed += 1;
                    deltas.ended(run, true);
                    failed.push((id, false));
                }
            }
            propagate(conn, failed, &mut deltas).await?;
            deltas.apply(conn).await?;
            if r.retried > 0 {
                notify(conn).await?;
            }
            Ok(r)
        })
    })
    .await
}

/// Inserts steps of one run (ready when they have no upstream, else
/// blocked), their dependency edges and `created` events. Returns ids by name.
pub(crate) async fn insert_steps(
    conn: &mut PgConnection,
    run: Uuid,
    parent: Option<i64>,
    steps: &[NewStep],
) -> Result<HashMap<String, i64>, StoreError> {
    let n = steps.len();
    let mut names = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut defs = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut triggers = Vec::with_capacity(n);
    let mut n_deps = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut timeouts: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut backoffs = Vec::with_capacity(n);
    let mut backoff_maxes = Vec::with_capacity(n);
    for s in steps {
        let mut deps: Vec<&String> = s.after.iter().collect();
        deps.sort();
        deps.dedup();
        names.push(s.name.clone());
        types.push(s.step_type.clone());
        defs.push(s.definition.clone());
        queues.push(s.queue.clone());
        triggers.push(s.trigger.as_str().to_owned());
        n_deps.push(deps.len() as i32);
        attempts.push(s.retry.max_attempts.max(1) as i32);
        timeouts.push(s.retry.timeout.map(millis));
        backoffs.push(millis(s.retry.initial_backoff));
        backoff_maxes.push(millis(s.retry.max_backoff));
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "WITH ins AS (
            INSERT INTO wf.steps (run_id, parent_id, name, step_type, definition, queue, trigger, status,
                                  pending_deps, n_deps, max_attempts, policy_attempts, timeout_ms, backoff_ms, backoff_max_ms)
            SELECT $1, $2, name, step_type, definition, queue, trigger::wf.trigger_rule,
                   CASE WHEN n_deps = 0 THEN 'ready' ELSE 'blocked' END::wf.step_state,
                   n_deps, n_deps, attempts, attempts, timeout_ms, backoff_ms, backoff_max_ms
            FROM unnest($3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::int[], $9::int[],
                        $10::bigint[], $11::bigint[], $12::bigint[])
                 AS t(name, step_type, definition, queue, trigger, n_deps, attempts, timeout_ms, backoff_ms, backoff_max_ms)
            RETURNING id, run_id, name, status, queue, step_type, available_at
         ), queued AS (
            INSERT INTO wf.ready_queue (step_id, queue, step_type, available_at)
            SELECT id, queue, step_type, available_at FROM ins WHERE status = 'ready'
         ), ev AS (
            INSERT INTO wf.step_events (run_id, step_id, event, to_status, attempt)
            SELECT run_id, id, 'created', status, 0 FROM ins
         )
         SELECT name, id FROM ins",
    )
    .bind(run)
    .bind(parent)
    .bind(&names)
    .bind(&types)
    .bind(&defs)
    .bind(&queues)
    .bind(&triggers)
    .bind(&n_deps)
    .bind(&attempts)
    .bind(&timeouts)
    .bind(&backoffs)
    .bind(&backoff_maxes)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| match interpret(e) {
        StoreError::Other(m) if m.contains("23505") => StoreError::Conflict(format!("duplicate step name: {m}")),
        other => other,
    })?;
    let ids: HashMap<String, i64> = rows.into_iter().collect();
    let mut from = Vec::new();
    let mut to = Vec::new();
    for s in steps {
        let mut deps: Vec<&String> = s.after.iter().collect();
        deps.sort();
        deps.dedup();
        for d in deps {
            let dep = ids
                .get(d)
                .ok_or_else(|| StoreError::Conflict(format!("step {} depends on unknown step {d}", s.name)))?;
            from.push(ids[&s.name]);
            to.push(*dep);
        }
    }
    if !from.is_empty() {
        sqlx::query("INSERT INTO wf.step_deps (step_id, depends_on) SELECT * FROM unnest($1::bigint[], $2::bigint[])")
            .bind(&from)
            .bind(&to)
            .execute(&mut *conn)
            .await
            .map_err(interpret)?;
    }
    Ok(ids)
}

/// Per-run changes of the `remaining` and `failed_steps` counters, applied
/// once per transaction in run-id order.
#[derive(Default)]
pub(crate) struct RunDeltas {
    by_run: BTreeMap<Uuid, (i32, i32)>,
}

impl RunDeltas {
    /// A step of `run` ended (`failed`: failed or upstream-failed).
    pub(crate) fn ended(&mut self, run: Uuid, failed: bool) {
        let e = self.by_run.entry(run).or_default();
        e.0 -= 1;
        e.1 += i32::from(failed);
    }

    /// Steps were added to `run` (fan-out).
    pub(crate) fn added(&mut self, run: Uuid, n: i32) {
        self.by_run.entry(run).or_default().0 += n;
    }

    /// Applies the deltas; a run whose `remaining` reaches 0 ends.
    pub(crate) async fn apply(self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.by_run.is_empty() {
            return Ok(());
        }
        let (runs, (dn, df)): (Vec<Uuid>, (Vec<i32>, Vec<i32>)) = self.by_run.into_iter().unzip();
        sqlx::query(
            "UPDATE wf.runs r
             SET remaining = r.remaining + d.dn,
                 started_at = COALESCE(r.started_at, (SELECT min(e.at) FROM wf.step_events e
                                                      WHERE e.run_id = r.id AND e.event = 'claimed')),
                 failed_steps = r.failed_steps + d.df,
                 status = CASE WHEN r.status = 'cancelled' THEN r.status
                               WHEN r.remaining + d.dn > 0 THEN 'running'
                               WHEN r.cancelled_steps > 0 THEN 'cancelled'
                               WHEN r.failed_steps + d.df > 0 THEN 'failed'
                               ELSE 'succeeded' END::wf.run_state,
                 finished_at = CASE WHEN r.status = 'cancelled' THEN r.finished_at
                                    WHEN r.remaining + d.dn > 0 THEN NULL
                                    ELSE clock_timestamp() END
             FROM (SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[]) AS t(id, dn, df) ORDER BY id) d
             WHERE r.id = ANY($1) AND r.id = d.id",
        )
        .bind(&runs)
        .bind(&dn)
        .bind(&df)
        .execute(&mut *conn)
        .await
        .map_err(interpret)?;
        Ok(())
    }
}

/// Wakes listening workers (once per transaction: NOTIFY serialises commits).
pub(crate) async fn notify(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')").bind(crate::CHANNEL).execute(&mut *conn).await.map_err(interpret)?;
    Ok(())
}

/// Runs `f` in a transaction, retrying it on deadlock or serialization failure.
pub(crate) async fn with_tx<T, F>(pool: &PgPool, mut f: F) -> Result<T, StoreError>
where
    F: for<'c> FnMut(
        &'c mut PgConnection,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'c>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let mut tx = pool.begin().await.map_err(interpret)?;
        let r = f(&mut tx).await;
        let r = match r {
            Ok(v) => tx.commit().await.map(|()| v).map_err(|e| (is_conflict(&e), interpret(e))),
            Err(e) => {
                let conflict = matches!(&e, StoreError::Unavailable(m) if m.starts_with("transaction conflict"));
                // Roll back now: a dropped transaction's ROLLBACK is only
                // sent when its connection is next used, and until then its
                // row locks (queue rows locked by `lock_run`, say) make
                // claims skip those steps.
                let _ = tx.rollback().await;
                Err((conflict, e))
            }
        };
        match r {
            Ok(v) => return Ok(v),
            Err((true, _)) if tries < 8 => {
                tokio::time::sleep(conflict_pause(tries)).await;
            }
            Err((_, e)) => return Err(e),
        }
    }
}

/// A small, growing, jittered pause before retrying a transaction that lost
/// a deadlock, so the two contenders do not collide again in step.
pub(crate) fn conflict_pause(tries: u32) -> Duration {
    Duration::from_millis(u64::from(tries) * 3 + fastrand::u64(0..5))
}

pub(crate) fn parse_status(s: &str) -> Result<StepState, StoreError> {
    StepState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown step status {s:?}")))
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn split(leases: &[Lease]) -> (Vec<i64>, Vec<i64>) {
    leases.iter().map(|l| (l.step.0, l.token)).unzip()
}

#[cfg(test)]
mod plan_shape {
    //! The control plane plans its statements once per connection, often
    //! while the tables are still nearly empty (a worker claims as soon as
    //! it starts), and keeps the plan until the next ANALYZE of a table it
    //! reads. Whatever the statistics said then, the tables that grow with
    //! the history (runs, steps, events) must be reached through an index
    //! condition driven by the batch: a plan that reads a whole index of
    //! them per call is fine on an empty table and ruinous on a full one
    //! (a claim joined to runs that way took 61 ms instead of 1.5 ms, 30x).
    //! `step_deps` is left out: on an empty table the planner rightly
    //! prefers reading its one page to a lookup per key, and no rewrite
    //! takes that choice away; such a plan lasts until the next ANALYZE.

    use super::{PROPAGATE, RESCUE};
    use crate::cycle::{CLAIM, COMPLETE_FAST, CYCLE};
    use serde_json::Value;
    use sqlx::PgPool;
    use std::collections::HashMap;

    const TABLES: &[&str] = &["runs", "steps", "step_events", "ready_queue", "leases"];

    /// Scans of the growing tables not bounded by the batch's keys: no index
    /// condition, or one that leaves the index's leading column free (a
    /// btree then reads the whole index and filters, as a claim's delete of
    /// its queue rows by `step_id` through `ready_queue_order` did when
    /// planned on an empty queue: 1,500 steps/s instead of 7,000, with the
    /// index full of the entries of steps claimed since the last vacuum).
    fn unbounded_scans(node: &Value, leading: &HashMap<String, String>, found: &mut Vec<String>) {
        let kind = node["Node Type"].as_str().unwrap_or_default();
        let relation = node["Relation Name"].as_str().unwrap_or_default();
        // The rescuer reads every lease row (the running steps) on purpose.
        let whole_leases = relation == "leases" && node["Parent Relationship"] == "InitPlan";
        if TABLES.contains(&relation) && !whole_leases && kind != "ModifyTable" && kind != "Tid Scan" {
            let index = node["Index Name"].as_str().unwrap_or_default();
            let cond = node["Index Cond"].as_str();
            let lead = leading.get(index).map(String::as_str).unwrap_or("?");
            match cond {
                None => found.push(format!("{kind} on {relation}")),
                Some(c) if !c.contains(&format!("({lead} ")) => {
                    found.push(format!("{kind} on {relation} using {index} without its leading column {lead}: {c}"))
                }
                Some(_) => {}
            }
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            unbounded_scans(child, leading, found);
        }
    }

    #[sqlx::test(migrations = false)]
    async fn plans_made_on_near_empty_tables_stay_bounded_by_the_batch(pool: PgPool) {
        crate::migrator().run(&pool).await.expect("migrate");
        let mut conn = pool.acquire().await.unwrap();
        for (name, value) in crate::ENGINE_SESSION {
            sqlx::query("SELECT set_config($1, $2, false)").bind(name).bind(value).execute(&mut *conn).await.unwrap();
        }
        let statements = [
            (
                "cycle",
                "bigint[], bigint[], jsonb[], text, text[], bigint, uuid, bigint, timestamptz, timestamptz, bigint",
                CYCLE,
                "'{1,2}', '{1,1}', '{null,null}', 'default', '{x}', 10, gen_random_uuid(), 1000, 'epoch', 'epoch', 0",
            ),
            (
                "claim",
                "bigint[], bigint[], jsonb[], text, text[], bigint, uuid, bigint, timestamptz, timestamptz, bigint",
                CLAIM,
                "'{}', '{}', '{}', 'default', '{x}', 10, gen_random_uuid(), 1000, 'epoch', 'epoch', 0",
            ),
            ("complete", "bigint[], bigint[], jsonb[]", COMPLETE_FAST, "'{1,2}', '{1,1}', '{null,null}'"),
            ("propagate", "bigint[], bool[]", PROPAGATE, "'{1,2}', '{t,f}'"),
            ("rescue", "bigint", RESCUE, "100"),
        ];
        // Planned and cached while the tables hold one run, freshly
        // analyzed: the statistics say "one row", which is what makes a
        // planner read a whole table as the outer side of a join. Then
        // planned again after an ANALYZE that found the queue empty (its
        // one step claimed by the first execution), as autovacuum finds it
        // whenever the workers have drained it.
        let mut tx = pool.begin().await.unwrap();
        crate::fixtures::chains_insert(&mut tx, "first", 1, 1, "x", &serde_json::json!({}), "default").await.unwrap();
        tx.commit().await.unwrap();
        sqlx::raw_sql("VACUUM ANALYZE wf.runs, wf.steps, wf.step_deps, wf.step_events").execute(&pool).await.unwrap();
        for (name, types, sql, args) in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE {name}({types}) AS {sql}")))
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("EXECUTE {name}({args})"))).execute(&mut *conn).await.unwrap();
        }
        sqlx::raw_sql("VACUUM ANALYZE wf.ready_queue, wf.leases").execute(&pool).await.unwrap();
        for (name, _, _, args) in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("EXECUTE {name}({args})"))).execute(&mut *conn).await.unwrap();
        }
        let leading: HashMap<String, String> = sqlx::query_as(
            "SELECT c.relname::text, a.attname::text FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE c.relnamespace = 'wf'::regnamespace",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let mut tx = pool.begin().await.unwrap();
        crate::fixtures::chains_insert(&mut tx, "grown", 3000, 4, "x", &serde_json::json!({}), "default")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut found = Vec::new();
        for (name, _, _, args) in statements {
            let (plan,): (Value,) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) EXECUTE {name}({args})")))
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            let before = found.len();
            unbounded_scans(&plan[0]["Plan"], &leading, &mut found);
            for f in &mut found[before..] {
                *f = format!("{name}: {f}");
            }
        }
        assert!(found.is_empty(), "scans not bounded by the batch's keys: {found:#?}");
    }
}
