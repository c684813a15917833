//! Claims start their walk of the ready index at the store's hint (the
//! newest key it claimed, less a margin) and walk from the head once a
//! second: nothing ready is lost, FIFO order holds, and a step that became
//! ready far behind the hint is claimed by the next walk from the head.

use std::time::Duration;

use sqlx::PgPool;
use workflow_core::testing as t;
use workflow_core::{RunId, Store, Trigger, WorkerId};
use workflow_pg::PgStore;

const TTL: Duration = Duration::from_secs(30);

async fn start(store: &PgStore, steps: usize) -> RunId {
    let plan = (0..steps).map(|i| t::plan_step(&format!("s{i:03}"), "x", &[], Trigger::AllSucceeded, 1)).collect();
    store.run_insert(t::plan(plan)).await.expect("insert").id
}

async fn step_id(pool: &PgPool, run: RunId) -> i64 {
    sqlx::query_scalar("SELECT id FROM wf.steps WHERE run_id = $1").bind(run.0).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn steps_sharing_one_available_at_are_claimed_in_id_order_none_skipped(pool: PgPool) {
    workflow_pg::migrator().run(&pool).await.expect("migrate");
    let store = PgStore::new(pool.clone());
    // 50 steps inserted in one transaction share one available_at: only the
    // id orders them, and the hint must not skip any of them.
    start(&store, 50).await;
    let worker = WorkerId::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let batch = t::claim(&store, worker, &["x"], 10, TTL).await;
        assert_eq!(batch.len(), 10);
        ids.extend(batch.iter().map(|c| c.lease.step.0));
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "claimed in id order, each once");
    assert!(t::claim(&store, worker, &["x"], 10, TTL).await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn a_step_ready_behind_the_hint_is_claimed_by_the_next_walk_from_the_head(pool: PgPool) {
    workflow_pg::migrator().run(&pool).await.expect("migrate");
    let store = PgStore::new(pool.clone());
    let worker = WorkerId::new();
    let first = start(&store, 1).await;
    let claimed = t::claim(&store, worker, &["x"], 10, TTL).await;
    assert_eq!(claimed.len(), 1, "the first claim walks from the head");
    let hint_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT available_at FROM wf.steps WHERE id = $1")
        .bind(step_id(&pool, first).await)
        .fetch_one(&pool)
        .await
        .unwrap();

    // As if made ready by transactions that were open when the first step
    // was claimed: one within the margin, one long before it.
    let near = start(&store, 1).await;
    let far = start(&store, 1).await;
    let fresh = start(&store, 1).await;
    for (run, back) in [(near, 100), (far, 10_000)] {
        sqlx::query(
            "WITH s AS (
                UPDATE wf.steps SET available_at = $2 - $3 * interval '1 millisecond' WHERE run_id = $1
                RETURNING id, available_at
             )
             UPDATE wf.ready_queue q SET available_at = s.available_at FROM s WHERE q.step_id = s.id",
        )
        .bind(run.0)
        .bind(hint_at)
        .bind(back)
        .execute(&pool)
        .await
        .unwrap();
    }
    let (near_id, far_id, fresh_id) =
        (step_id(&pool, near).await, step_id(&pool, far).await, step_id(&pool, fresh).await);

    let hinted: Vec<i64> = t::claim(&store, worker, &["x"], 10, TTL).await.iter().map(|c| c.lease.step.0).collect();
    assert_eq!(hinted, vec![near_id, fresh_id], "a hinted claim reads the margin before the hint and what follows");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let walked: Vec<i64> = t::claim(&store, worker, &["x"], 10, TTL).await.iter().map(|c| c.lease.step.0).collect();
    assert_eq!(walked, vec![far_id], "the walk from the head a second later finds it");
}
