//! The `wf` binary: exit codes, one-line errors, JSON shapes.

use crate::support::*;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use workflow_core::{RunState, Store};
use workflow_pg::PgStore;

fn one_line_error(o: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
}

#[sqlx::test(migrations = false)]
async fn bad_input_gets_one_line_and_writes_nothing(pool: PgPool) {
    migrate(&pool).await;
    let url = db_url(&pool).await;
    let missing = uuid::Uuid::new_v4().to_string();
    one_line_error(&wf(Some(&url), &["run", "show", &missing]), 1, "no run with id");
    one_line_error(&wf(Some(&url), &["run", "history", "not-a-uuid"]), 1, "bad run id");
    one_line_error(&wf(Some(&url), &["run", "start", "nope"]), 1, "unknown workflow \"nope\"");
    one_line_error(&wf(Some(&url), &["run", "start", "synthetic", "--param", "steps=-3"]), 1, "bad parameter steps");
    one_line_error(&wf(Some(&url), &["run", "start", "synthetic", "--param", "steps"]), 1, "expected key=value");
    one_line_error(&wf(Some(&url), &["run", "start", "synthetic", "-p", "steps=9999999999"]), 1, "must be 1..");
    let (runs,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf.runs").fetch_one(&pool).await.unwrap();
    assert_eq!(runs, 0, "nothing written");
    let started = wf(Some(&url), &["run", "start", "synthetic", "--json"]);
    assert!(started.status.success(), "{}", stderr(&started));
    let id = serde_json::from_slice::<serde_json::Value>(&started.stdout).unwrap()["id"].as_str().unwrap().to_owned();
    one_line_error(&wf(Some(&url), &["run", "history", &id, "--step", "ghost"]), 1, "no step named \"ghost\"");
    one_line_error(&wf(Some(&url), &["step", "retry", &id, "split"]), 1, "only a failed or cancelled step");
    let usage = wf(Some(&url), &["step", "skip", &id, "split"]);
    assert_eq!(usage.status.code(), Some(2), "skip without --reason is a usage error");
}

#[sqlx::test(migrations = false)]
async fn an_unmigrated_or_newer_database_is_refused_with_one_line(pool: PgPool) {
    let url = db_url(&pool).await;
    one_line_error(&wf(Some(&url), &["runs", "list"]), 1, "run `wf migrate`");
    one_line_error(&wf(Some(&url), &["worker"]), 1, "run `wf migrate`");
    migrate(&pool).await;
    assert!(wf(Some(&url), &["runs", "list"]).status.success());
    sqlx::query(
        "INSERT INTO wf._migrations (version, description, success, checksum, execution_time)
         VALUES (999999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    one_line_error(&wf(Some(&url), &["worker"]), 1, "newer than this binary knows");
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_without_showing_the_password() {
    let start = Instant::now();
    let url = "postgres://alice:hunter2@127.0.0.1:9/wf";
    let o = wf(Some(url), &["runs", "list"]);
    one_line_error(&o, 1, "cannot connect to postgres://alice:***@127.0.0.1:9/wf");
    assert!(!stderr(&o).contains("hunter2"));
    assert!(start.elapsed() < Duration::from_secs(15), "short connect timeout");
}

#[sqlx::test(migrations = false)]
async fn wait_exits_by_outcome_and_listings_have_their_json_shape(pool: PgPool) {
    migrate(&pool).await;
    let url = db_url(&pool).await;
    let worker = start_worker(&url, wf_cli::builtin_registry(), config(4, Duration::from_secs(5))).await;
    let ok = wf_async(&url, &["run", "start", "synthetic", "-p", "steps=3", "--wait"]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let failed = wf_async(
        &url,
        &["run", "start", "synthetic", "-p", "steps=1", "-p", "fail_rate=1", "-p", "max_attempts=1", "--wait"],
    )
    .await;
    assert_eq!(failed.status.code(), Some(wf_cli::EXIT_RUN_FAILED as i32), "{}", stderr(&failed));

    // Cancel a slow run while another process waits for it.
    let url2 = url.clone();
    let waiter = tokio::spawn(async move {
        wf_async(&url2, &["run", "start", "synthetic", "-p", "steps=2", "-p", "sleep_ms=20000", "--wait"]).await
    });
    let store = PgStore::new(pool.clone());
    let slow = loop {
        let runs = store.runs_list(workflow_core::store::RunsFilter { limit: 10, ..Default::default() }).await.unwrap();
        if let Some(r) = runs.iter().find(|r| r.params.get("sleep_ms") == Some("20000")) {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cancel = wf_async(&url, &["run", "cancel", &slow.to_string(), "--reason", "test"]).await;
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    let waited = waiter.await.unwrap();
    assert_eq!(waited.status.code(), Some(wf_cli::EXIT_RUN_CANCELLED as i32), "{}", stderr(&waited));
    assert_eq!(store.run_get(slow).await.unwrap().status, RunState::Cancelled);
    worker.stop().await;

    let list: serde_json::Value = serde_json::from_slice(&wf(Some(&url), &["runs", "list", "--json"]).stdout).unwrap();
    let runs = list.as_array().expect("array");
    assert_eq!(runs.len(), 3);
    for key in ["id", "workflow", "status", "correlation_id", "created_at"] {
        assert!(runs[0].get(key).is_some(), "runs list lacks {key}");
    }
    let failed_only: serde_json::Value =
        serde_json::from_slice(&wf(Some(&url), &["runs", "list", "--status", "failed", "--json"]).stdout).unwrap();
    assert_eq!(failed_only.as_array().unwrap().len(), 1);
    let id = runs[0]["id"].as_str().unwrap();
    let show: serde_json::Value =
        serde_json::from_slice(&wf(Some(&url), &["run", "show", id, "--json"]).stdout).unwrap();
    assert_eq!(show["id"], runs[0]["id"]);
    for key in ["name", "status", "attempts"] {
        assert!(show["steps"][0].get(key).is_some(), "run show step lacks {key}");
    }
    let history: serde_json::Value =
        serde_json::from_slice(&wf(Some(&url), &["run", "history", &slow.to_string(), "--json"]).stdout).unwrap();
    let cancelled: Vec<_> = history.as_array().unwrap().iter().filter(|e| e["event"] == "cancelled").collect();
    assert!(!cancelled.is_empty());
    assert_eq!(cancelled[0]["reason"], "test");
    assert!(cancelled[0]["actor"].as_str().is_some_and(|a| !a.is_empty()));
}

#[test]
fn feed_inspect_reports_counts_as_json_and_rejects_a_non_feed_in_one_line() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/feeds/tests/fixtures");
    let o = wf(None, &["feed", "inspect", "--json", &format!("{fixtures}/nacha/20110805A.ach")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "nacha");
    // The file's own batch control records list 48 entries in 4 batches.
    assert_eq!(v["transactions"], 48);
    for key in ["statements", "totals", "findings", "rejects"] {
        assert!(v.get(key).is_some(), "inspect JSON lacks {key}");
    }
    one_line_error(&wf(None, &["feed", "inspect", &format!("{fixtures}/mt940/invalid_statement.sta")]), 1, "error:");
    one_line_error(&wf(None, &["feed", "inspect", &format!("{fixtures}/csv/mint.csv")]), 1, "--profile");
}

/// `wf migrate` from schema version 2: refused while a worker is live (it
/// would keep running the old statements), then moves the waiting and
/// running steps into the ready queue and the lease table.
#[sqlx::test(migrations = false)]
async fn upgrading_waits_for_the_workers_and_keeps_every_waiting_step(pool: PgPool) {
    let mut v2 = workflow_pg::migrator();
    v2.migrations = v2.migrations.iter().filter(|m| m.version <= 2).cloned().collect::<Vec<_>>().into();
    v2.run(&pool).await.expect("schema version 2");
    sqlx::raw_sql(
        "INSERT INTO wf.runs (id, workflow, workflow_version, correlation_id, created_by, remaining)
         VALUES ('00000000-0000-7000-8000-000000000001', 'synthetic', 1, 'c', 'test', 3);
         INSERT INTO wf.steps (run_id, name, step_type, definition, queue, trigger, status, max_attempts,
                               policy_attempts, backoff_ms, backoff_max_ms, worker_id, lease_expires_at)
         SELECT '00000000-0000-7000-8000-000000000001', 's' || k, 'synthetic.task', '{}', 'default',
                'all_succeeded', s::wf.step_state, 3, 3, 100, 1000,
                CASE WHEN s = 'running' THEN gen_random_uuid() END,
                CASE WHEN s = 'running' THEN now() + interval '1 hour' END
         FROM (VALUES (1, 'ready'), (2, 'running'), (3, 'ready')) AS t(k, s);
         INSERT INTO wf.workers (id, host, pid, queues, step_types, concurrency)
         VALUES (gen_random_uuid(), 'etl-1', 4242, '{default}', '{synthetic.task}', 8);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let url = db_url(&pool).await;
    one_line_error(&wf(Some(&url), &["migrate"]), 1, "1 live worker(s) (etl-1:4242): stop them before upgrading");
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM wf._migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(version, 2, "nothing migrated");

    sqlx::query("UPDATE wf.workers SET stopped_at = now()").execute(&pool).await.unwrap();
    let done = wf(Some(&url), &["migrate"]);
    assert!(done.status.success(), "{}", stderr(&done));
    let (queued, leased): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM wf.ready_queue), (SELECT count(*) FROM wf.leases)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((queued, leased), (2, 1), "the ready steps queued, the running one leased");
    assert_eq!(workflow_pg::queue_mismatches(&pool).await.unwrap(), 0);
    let again = wf(Some(&url), &["migrate"]);
    assert!(again.status.success(), "nothing left to upgrade: {}", stderr(&again));
}
