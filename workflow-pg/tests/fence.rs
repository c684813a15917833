//! A transactional step's completion: written in the step's own
//! transaction under the engine's session settings, which are handed back
//! to the caller's transaction afterwards.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use workflow_core::testing as t;
use workflow_core::{Resources, RunState, Store, Trigger, TxFence, WorkerId};
use workflow_pg::PgStore;

async fn settings(conn: &mut sqlx::PgConnection) -> Vec<String> {
    let mut out = Vec::new();
    for (name, _) in workflow_pg::ENGINE_SESSION {
        let (v,): (String,) =
            sqlx::query_as("SELECT current_setting($1)").bind(name).fetch_one(&mut *conn).await.unwrap();
        out.push(v);
    }
    out
}

#[sqlx::test(migrations = false)]
async fn completion_in_the_steps_transaction_gives_the_callers_settings_back(pool: PgPool) {
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
    let w = WorkerId::new();
    let claimed = t::claim(&store, w, &["x"], 1, Duration::from_secs(30)).await;
    assert_eq!(claimed.len(), 1);

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL enable_seqscan = on").execute(&mut *tx).await.unwrap();
    let before = settings(&mut tx).await;
    assert_ne!(
        before,
        workflow_pg::ENGINE_SESSION.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>(),
        "the caller starts from other settings"
    );
    fence.complete_in(&mut tx, claimed[0].lease, &json!({"ok": true})).await.expect("lease holds");
    assert_eq!(settings(&mut tx).await, before, "the caller's settings are back for the rest of its transaction");
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Running, "nothing visible before commit");
    tx.commit().await.unwrap();
    assert_eq!(store.run_get(run).await.unwrap().status, RunState::Succeeded);

    // A second completion of the same lease is refused, and still hands the settings back.
    let mut tx = pool.begin().await.unwrap();
    let before = settings(&mut tx).await;
    let err = fence.complete_in(&mut tx, claimed[0].lease, &json!(null)).await.unwrap_err();
    assert!(matches!(err, workflow_core::StoreError::LeaseLost { .. }), "{err:?}");
    assert_eq!(settings(&mut tx).await, before);
}
