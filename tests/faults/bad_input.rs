//! Bad input in the database: clear errors, never a panic, a hot loop or a
//! run stuck without explanation.

use crate::harness::*;
use std::time::Duration;
use workflow_core::{RunState, StepState, Store};
use workflow_pg::PgStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_definitions_fail_their_step_with_the_reason() {
    let (_cluster, url, pool) = Cluster::start("corrupt").await;
    let store = PgStore::new(pool.clone());
    let run = start_run(&store, "synthetic", &["steps=3", "shape=chain"]).await;
    sqlx::query(
        "UPDATE wf.steps SET definition = '{\"type\": \"synthetic.task\", \"index\": \"oops\"}' WHERE name = 't000000'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let other = start_run(&store, "synthetic", &["steps=2", "shape=chain"]).await;
    sqlx::query("UPDATE wf.steps SET definition = '42' WHERE run_id = $1 AND name = 't000000'")
        .bind(other.0)
        .execute(&pool)
        .await
        .unwrap();
    let w = WorkerProc::spawn(&url, &["--concurrency", "4"]);
    assert_eq!(wait_run(&store, run, Duration::from_secs(30)).await.unwrap(), RunState::Failed);
    assert_eq!(wait_run(&store, other, Duration::from_secs(30)).await.unwrap(), RunState::Failed);
    let steps = store.steps_list(run).await.unwrap();
    let bad = steps.iter().find(|s| s.name == "t000000").unwrap();
    assert_eq!(bad.status, StepState::Failed);
    assert_eq!(bad.attempts, 1, "a corrupt definition is permanent: no retries");
    assert!(bad.last_error.as_deref().unwrap_or("").contains("cannot read the definition"), "{bad:?}");
    assert!(steps.iter().filter(|s| s.name != "t000000").all(|s| s.status == StepState::UpstreamFailed));
    let (_, log) = w.term(Duration::from_secs(10));
    assert!(!log.contains("panicked"), "{log}");
    let out = wf(&url, &["run", "show", &run.to_string()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot read the definition"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_user_gets_one_clear_line() {
    let (_cluster, url, pool) = Cluster::start("readonly").await;
    sqlx::query("CREATE ROLE reader LOGIN").execute(&pool).await.unwrap();
    sqlx::query("GRANT USAGE ON SCHEMA wf TO reader").execute(&pool).await.unwrap();
    sqlx::query("GRANT SELECT ON ALL TABLES IN SCHEMA wf TO reader").execute(&pool).await.unwrap();
    let ro = url.replace("postgres://postgres@", "postgres://reader@");
    let listed = wf(&ro, &["runs", "list"]);
    assert!(listed.status.success(), "reading works: {}", String::from_utf8_lossy(&listed.stderr));
    for args in [&["run", "start", "synthetic"][..], &["worker"][..]] {
        let o = wf(&ro, args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("permission denied"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().last().map(|l| l.starts_with("error:")), Some(true), "{err}");
    }
}
