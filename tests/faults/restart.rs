//! The database goes away (twice) during a run.

use crate::harness::*;
use std::time::Duration;
use workflow_core::RunState;
use workflow_pg::PgStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_wait_out_two_database_restarts_and_lose_nothing() {
    let (cluster, url, pool) = Cluster::start("restart").await;
    let store = PgStore::new(pool.clone());
    let run = start_run(&store, "synthetic", &["steps=600", "sleep_ms=40", "max_attempts=20"]).await;
    let workers: Vec<WorkerProc> =
        (0..2).map(|_| WorkerProc::spawn(&url, &["--concurrency", "8", "--lease-ttl", "5s"])).collect();
    let mut restarts = 0;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.restart(Duration::from_secs(2)).await;
        restarts += 1;
    }
    // The store's pool reconnects on demand after the restarts.
    let status = wait_run(&store, run, Duration::from_secs(180)).await.expect("the run completes");
    assert_eq!(status, RunState::Succeeded);
    let mut reconnect_warnings = 0;
    for w in workers {
        let (_, log) = w.term(Duration::from_secs(30));
        reconnect_warnings += count(&log, "WARN");
    }
    assert!(reconnect_warnings > 0, "the workers noticed the outages");
    let dups = assert_invariants(&pool).await;
    record(&format!("restart: database restarts survived {restarts}, steps 602, duplicate effects {dups}"));
}
