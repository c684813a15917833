//! A transactional step's completion: written in the step's own
//! transaction, visible only when it commits, and refused a second time.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use workflow_core::testing as t;
use workflow_core::{Resources, RunState, Store, Trigger, TxFence, WorkerId};
use workflow_pg::PgStore;

#[sqlx::test(migrations = false)]
async fn completion_in_the_steps_transaction_commits_with_it_once(pool: PgPool) {
    workflow_pg::migrator().run(&pool).await.expect("migrate");
    let store = PgStore::new(pool.clone());
    let mut resources = Resources::new();
    store.provide_resources(&mut resources);
    let fence = resources.get::<Arc<dyn TxFence<sqlx::PgConnection>>>().expect("the store provides a fence").clone();
    let run = store
        .run_insert(t::plan(vec![t::plan_step("a", "x", &[], Trigger::AllSucceeded, 1)]))
        .await
        .expect("insert")
        .id;
    let claimed = t::claim(&store, WorkerId::new(), &["x"], 1, Duration::from_secs(30)).await;
    assert_eq!(claimed.len(), 1);

    // Rolled back: as if the step had never finished.
    let mut tx = pool.begin().await.unwrap();
    fence.complete_in(&mut tx, claimed[0].lease, &json!({"ok": false})).await.expect("lease holds");
    tx.rollback().await.unwrap();
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Running);

    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET jit = on").execute(&mut *conn).await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    fence.complete_in(&mut tx, claimed[0].lease, &json!({"ok": true})).await.expect("lease holds");
    assert_eq!(jit(&mut tx).await, "off", "no JIT for the completion (its estimates can pass the threshold)");
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Running, "nothing visible before commit");
    tx.commit().await.unwrap();
    assert_eq!(jit(&mut conn).await, "on", "the connection's own setting after the transaction");
    drop(conn);
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Succeeded);

    let mut tx = pool.begin().await.unwrap();
    let err = fence.complete_in(&mut tx, claimed[0].lease, &json!(null)).await.unwrap_err();
    assert!(matches!(err, workflow_core::StoreError::LeaseLost { .. }), "{err:?}");
}

async fn jit(conn: &mut sqlx::PgConnection) -> String {
    let (v,): (String,) = sqlx::query_as("SELECT current_setting('jit')").fetch_one(conn).await.unwrap();
    v
}
