//! The engine under concurrent in-process workers on a real PostgreSQL.

use crate::support::*;
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;
use workflow_core::store::StepsClaim;
use workflow_core::testing::{plan, plan_step};
use workflow_core::{Lease, Registry, Resources, RunState, Store, StoreError, Trigger, TxFence, WorkerId};
use workflow_pg::PgStore;

const TTL: Duration = Duration::from_secs(5);

/// Every step has exactly one successful completion, and every effect row
/// exists exactly once, written under the lease token that completed it.
async fn assert_exactly_once(pool: &PgPool) {
    let (bad,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM wf.steps s
         WHERE (SELECT count(*) FROM wf.step_events e
                WHERE e.step_id = s.id AND e.event IN ('succeeded', 'expanded')) <> 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(bad, 0, "steps without exactly one successful completion");
    let (dup,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT 1 FROM wf_synthetic.effects GROUP BY run_id, step HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(dup, 0, "duplicate effects");
    let (stale,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM wf_synthetic.effects f
         JOIN wf.steps s ON s.run_id = f.run_id AND s.name = f.step
         WHERE f.lease_token <> s.lease_token",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(stale, 0, "an effect came from a superseded lease");
}

#[sqlx::test(migrations = false)]
async fn four_workers_run_fan_out_fan_in_and_chains_exactly_once(pool: PgPool) {
    migrate(&pool).await;
    let url = db_url(&pool).await;
    let store = PgStore::new(pool.clone());
    let fan = start_run(&store, "synthetic", &["steps=800", "fail_rate=0.1", "max_attempts=20", "seed=3"]).await;
    let chain =
        start_run(&store, "synthetic", &["steps=120", "shape=chain", "fail_rate=0.05", "max_attempts=20"]).await;
    let noop = start_run(&store, "synthetic", &["steps=200", "effect=false"]).await;
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(start_worker(&url, wf_cli::builtin_registry(), config(8, TTL)).await);
    }
    for run in [fan, chain, noop] {
        assert_eq!(wait_run(&store, run, Duration::from_secs(240)).await, RunState::Succeeded);
    }
    for w in workers {
        w.stop().await;
    }
    assert_exactly_once(&pool).await;
    let (steps,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf.steps").fetch_one(&pool).await.unwrap();
    assert_eq!(steps, 2 + 800 + 120 + 2 + 200);
    let (effects,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM wf_synthetic.effects").fetch_one(&pool).await.unwrap();
    assert_eq!(effects, 800 + 120, "one effect per effectful task");
    let (retried,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM wf.step_events WHERE event = 'failed'").fetch_one(&pool).await.unwrap();
    assert!(retried > 20, "injected failures were retried ({retried})");
    let fan_join = store.steps_list(fan).await.unwrap().into_iter().find(|s| s.name == "join").unwrap();
    assert_eq!(fan_join.after.len(), 801, "the join waited for the split and its 800 children");
}

fn fence(store: &PgStore) -> std::sync::Arc<dyn TxFence<sqlx::PgConnection>> {
    let mut res = Resources::new();
    store.provide_resources(&mut res);
    res.get::<std::sync::Arc<dyn TxFence<sqlx::PgConnection>>>().expect("fence").clone()
}

async fn claim_all(store: &PgStore, w: WorkerId, kind: &str, ttl: Duration) -> Vec<Lease> {
    store
        .steps_claim(StepsClaim {
            worker: w,
            queues: vec!["default".into()],
            step_types: vec![format!("test.{kind}")],
            limit: 10,
            lease_ttl: ttl,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.lease)
        .collect()
}

#[sqlx::test(migrations = false)]
async fn two_last_upstreams_completing_at_once_promote_the_dependent_once(pool: PgPool) {
    migrate(&pool).await;
    let store = PgStore::new(pool.clone());
    let run = store
        .run_insert(plan(vec![
            plan_step("a", "x", &[], Trigger::AllSucceeded, 1),
            plan_step("b", "x", &[], Trigger::AllSucceeded, 1),
            plan_step("c", "y", &["a", "b"], Trigger::AllSucceeded, 1),
        ]))
        .await
        .unwrap()
        .id;
    let w = WorkerId::new();
    let leases = claim_all(&store, w, "x", TTL).await;
    assert_eq!(leases.len(), 2);
    let fence = fence(&store);
    let mut tx1 = pool.begin().await.unwrap();
    fence.complete_in(&mut tx1, leases[0], &json!("a")).await.unwrap();
    // The second completion runs on its own connection and must wait for
    // the dependent's row lock that the first transaction holds.
    let (pool2, fence2, lease_b) = (pool.clone(), fence.clone(), leases[1]);
    let second = tokio::spawn(async move {
        let mut tx2 = pool2.begin().await.unwrap();
        fence2.complete_in(&mut tx2, lease_b, &json!("b")).await.unwrap();
        tx2.commit().await.unwrap();
    });
    let mut waited = false;
    for _ in 0..200 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if n > 0 {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(waited, "the second completion should block on the dependent's row lock");
    tx1.commit().await.unwrap();
    second.await.unwrap();
    let c = claim_all(&store, w, "y", TTL).await;
    assert_eq!(c.len(), 1, "the dependent is ready once");
    let events = store.events_list(run, Some("c".into())).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event == "deps_met").count(), 1);
    assert!(claim_all(&store, w, "y", TTL).await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn transactional_writes_roll_back_with_a_stale_lease(pool: PgPool) {
    migrate(&pool).await;
    let store = PgStore::new(pool.clone());
    let run = store.run_insert(plan(vec![plan_step("a", "x", &[], Trigger::AllSucceeded, 3)])).await.unwrap().id;
    let w = WorkerId::new();
    let stale = claim_all(&store, w, "x", Duration::from_millis(1)).await.remove(0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.leases_rescue(10).await.unwrap().retried, 1);
    let current = claim_all(&store, w, "x", TTL).await.remove(0);
    let fence = fence(&store);

    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO wf_synthetic.effects (run_id, step, attempt, lease_token, input_hash) VALUES ($1, 'a', 1, $2, '')",
    )
    .bind(run.0)
    .bind(stale.token)
    .execute(&mut *tx)
    .await
    .unwrap();
    let r = fence.complete_in(&mut tx, stale, &json!("zombie")).await;
    assert!(matches!(r, Err(StoreError::LeaseLost { .. })), "{r:?}");
    drop(tx);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf_synthetic.effects").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 0, "the zombie's write rolled back with its rejected completion");

    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO wf_synthetic.effects (run_id, step, attempt, lease_token, input_hash) VALUES ($1, 'a', 2, $2, '')",
    )
    .bind(run.0)
    .bind(current.token)
    .execute(&mut *tx)
    .await
    .unwrap();
    fence.complete_in(&mut tx, current, &json!("real")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Succeeded);
    assert_exactly_once(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn graceful_shutdown_releases_unfinished_steps_and_loses_nothing(pool: PgPool) {
    migrate(&pool).await;
    let url = db_url(&pool).await;
    let store = PgStore::new(pool.clone());
    let run = start_run(&store, "synthetic", &["steps=24", "sleep_ms=3000"]).await;
    let mut cfg = config(8, Duration::from_secs(30));
    cfg.shutdown_grace = Duration::from_millis(300);
    let first = start_worker(&url, wf_cli::builtin_registry(), cfg).await;
    // Wait until the first worker holds a full batch of sleeping tasks.
    for _ in 0..100 {
        let info = store.run_get(run).await.unwrap();
        if info.step_counts.get("running").copied().unwrap_or(0) >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = first.stop().await;
    assert!(stats.released.load(std::sync::atomic::Ordering::Relaxed) >= 8, "{stats:?}");
    let steps = store.steps_list(run).await.unwrap();
    assert!(steps.iter().all(|s| s.status != workflow_core::StepState::Running), "no lease is left to expire");

    let mut fast = config(24, Duration::from_secs(30));
    fast.shutdown_grace = Duration::from_secs(10);
    let second = start_worker(&url, wf_cli::builtin_registry(), fast).await;
    // Well inside the 30 s lease: released steps did not wait for expiry.
    assert_eq!(wait_run(&store, run, Duration::from_secs(20)).await, RunState::Succeeded);
    second.stop().await;
    let events = store.events_list(run, None).await.unwrap();
    assert!(events.iter().any(|e| e.event == "released"));
    assert!(!events.iter().any(|e| e.event == "lease_expired"));
    assert_exactly_once(&pool).await;
}

#[sqlx::test(migrations = false)]
async fn a_step_of_an_unregistered_type_waits_for_a_worker_that_has_it(pool: PgPool) {
    migrate(&pool).await;
    let url = db_url(&pool).await;
    let store = PgStore::new(pool.clone());
    let run = start_run(&store, "synthetic", &["steps=3"]).await;
    // An older binary: knows how to split and join, not the tasks.
    let partial = Registry::new().step_types(["synthetic.split", "synthetic.join"]);
    let old = start_worker(&url, partial, config(4, TTL)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let steps = store.steps_list(run).await.unwrap();
    let tasks: Vec<_> = steps.iter().filter(|s| s.step_type == "synthetic.task").collect();
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|s| s.status == workflow_core::StepState::Ready && s.attempts == 0));
    let workers = store.workers_list().await.unwrap();
    let why = wf_cli::render::waiting_for(tasks[0], &workers, chrono::Utc::now()).expect("explained");
    assert!(why.contains("synthetic.task"), "{why}");
    let out = wf(Some(&url), &["run", "show", &run.to_string()]);
    assert!(stdout(&out).contains("no live worker runs step type synthetic.task"), "{}", stdout(&out));

    let new = start_worker(&url, wf_cli::builtin_registry(), config(4, TTL)).await;
    assert_eq!(wait_run(&store, run, Duration::from_secs(30)).await, RunState::Succeeded);
    old.stop().await;
    new.stop().await;
}

/// A step whose code panics.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Panics;

#[typetag::serde(name = "test.panics")]
#[async_trait::async_trait]
impl workflow_core::Step for Panics {
    async fn run(
        &self,
        _ctx: &workflow_core::StepContext,
    ) -> Result<workflow_core::StepOutcome, workflow_core::StepError> {
        panic!("the step's code broke")
    }
}

#[sqlx::test(migrations = false)]
async fn a_panicking_step_is_a_failed_attempt_and_the_worker_goes_on(pool: PgPool) {
    migrate(&pool).await;
    let url = db_url(&pool).await;
    let store = PgStore::new(pool.clone());
    let run = store
        .run_insert(plan(vec![
            plan_step("boom", "panics", &[], Trigger::AllSucceeded, 2),
            plan_step("after", "panics", &["boom"], Trigger::AllSucceeded, 1),
        ]))
        .await
        .unwrap()
        .id;
    let noop = start_run(&store, "synthetic", &["steps=20", "effect=false"]).await;
    let registry = wf_cli::builtin_registry().step_types(["test.panics"]);
    let worker = start_worker(&url, registry, config(4, TTL)).await;
    assert_eq!(wait_run(&store, run, Duration::from_secs(30)).await, RunState::Failed);
    assert_eq!(wait_run(&store, noop, Duration::from_secs(30)).await, RunState::Succeeded, "the worker went on");
    worker.stop().await;
    let steps = store.steps_list(run).await.unwrap();
    let boom = steps.iter().find(|s| s.name == "boom").unwrap();
    assert_eq!(boom.status, workflow_core::StepState::Failed);
    assert_eq!(boom.attempts, 2, "a panic is a retryable failure");
    let error = boom.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("step panicked: the step's code broke"), "{error}");
    let after = steps.iter().find(|s| s.name == "after").unwrap();
    assert_eq!(after.status, workflow_core::StepState::UpstreamFailed);
    assert_eq!(workflow_pg::queue_mismatches(&pool).await.unwrap(), 0);
}
