//! kill -9 storms, frozen zombies and SIGTERM under load.

use crate::harness::*;
use std::time::{Duration, Instant};
use workflow_core::{RunState, Store};
use workflow_pg::PgStore;

const WORKER: &[&str] = &["--concurrency", "16", "--lease-ttl", "2s", "--poll-interval", "200ms"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_nine_loses_nothing_and_does_nothing_twice() {
    let soak = std::env::var("WF_SOAK_MINUTES").ok().and_then(|m| m.parse::<u64>().ok()).unwrap_or(0);
    let (_cluster, url, pool) = Cluster::start("chaos").await;
    let store = PgStore::new(pool.clone());
    let until = Instant::now() + Duration::from_secs(soak * 60);
    let mut rng = fastrand::Rng::with_seed(42);
    let (mut kills, mut runs, mut steps, mut rejected, mut lost) = (0, 0, 0, 0, 0);
    loop {
        let run = start_run(
            &store,
            "synthetic",
            &["steps=2000", "sleep_ms=15", "fail_rate=0.05", "max_attempts=60", &format!("seed={runs}")],
        )
        .await;
        runs += 1;
        let mut workers: Vec<WorkerProc> = (0..3).map(|_| WorkerProc::spawn(&url, WORKER)).collect();
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            let info = store.run_get(run).await.unwrap();
            if info.status != RunState::Running {
                break info.status;
            }
            assert!(Instant::now() < deadline, "run stuck under kills: {:?}", info.step_counts);
            tokio::time::sleep(Duration::from_millis(rng.u64(200..600))).await;
            let victim = rng.usize(..workers.len());
            let log = workers.swap_remove(victim).kill9();
            rejected += count(&log, "completion rejected") + count(&log, "failure of a lost lease discarded");
            lost += count(&log, "lease lost");
            kills += 1;
            workers.push(WorkerProc::spawn(&url, WORKER));
        };
        for w in workers {
            let (_, log) = w.term(Duration::from_secs(30));
            rejected += count(&log, "completion rejected") + count(&log, "failure of a lost lease discarded");
            lost += count(&log, "lease lost");
        }
        assert_eq!(status, RunState::Succeeded);
        steps += store.steps_list(run).await.unwrap().len();
        if Instant::now() >= until {
            break;
        }
    }
    let dups = assert_invariants(&pool).await;
    let expired: (i64,) = sqlx::query_as("SELECT count(*) FROM wf.step_events WHERE event = 'lease_expired'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(kills >= 10, "the storm killed workers ({kills})");
    assert!(expired.0 > 0, "killed workers' leases expired and were rescued");
    record(&format!(
        "chaos: runs {runs}, steps {steps}, kill -9 survived {kills}, leases rescued after expiry {}, \
         duplicate effects {dups}, zombie results rejected {rejected}, leases lost and detected {lost}",
        expired.0
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_zombie_is_fenced_and_blocks_no_one() {
    let (_cluster, url, pool) = Cluster::start("zombie").await;
    let store = PgStore::new(pool.clone());
    let run = start_run(&store, "synthetic", &["steps=6", "sleep_ms=4000", "max_attempts=5"]).await;
    let zombie = WorkerProc::spawn(&url, &["--concurrency", "8", "--lease-ttl", "2s"]);
    let held = loop {
        let steps = store.steps_list(run).await.unwrap();
        let running = steps.iter().filter(|s| s.status == workflow_core::StepState::Running).count();
        if running == 6 {
            break running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    zombie.signal("STOP");
    let frozen_at = Instant::now();
    let other = WorkerProc::spawn(&url, &["--concurrency", "8", "--lease-ttl", "2s"]);
    let status = wait_run(&store, run, Duration::from_secs(40)).await.expect("the other worker finishes");
    let took = frozen_at.elapsed();
    assert_eq!(status, RunState::Succeeded);
    // Expiry (2 s) + rescue (every 2 s) + the 4 s steps: far below a wait on the zombie.
    assert!(took < Duration::from_secs(20), "the other worker was held up for {took:?}");
    zombie.signal("CONT");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, zlog) = zombie.term(Duration::from_secs(30));
    let (_, _) = other.term(Duration::from_secs(30));
    let rejected = count(&zlog, "completion rejected") + count(&zlog, "failure of a lost lease discarded");
    let detected = count(&zlog, "lease lost");
    assert!(rejected + detected >= held, "every lease the zombie held ends fenced and logged: {zlog}");
    let dups = assert_invariants(&pool).await;
    record(&format!(
        "zombie: leases held when frozen {held}, finished elsewhere in {:.1} s, zombie results rejected {rejected}, \
         leases lost and detected by its heartbeat {detected}, duplicate effects {dups}",
        took.as_secs_f64()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_or_releases_every_lease() {
    let (_cluster, url, pool) = Cluster::start("sigterm").await;
    let store = PgStore::new(pool.clone());
    let run = start_run(&store, "synthetic", &["steps=60", "sleep_ms=3000"]).await;
    let args = ["--concurrency", "16", "--lease-ttl", "60s", "--shutdown-grace", "500ms"];
    let workers: Vec<WorkerProc> = (0..2).map(|_| WorkerProc::spawn(&url, &args)).collect();
    loop {
        let info = store.run_get(run).await.unwrap();
        if info.step_counts.get("running").copied().unwrap_or(0) >= 32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut released = 0;
    for w in workers {
        let (took, log) = w.term(Duration::from_secs(10));
        assert!(took < Duration::from_secs(5), "exits soon after its grace period ({took:?})");
        released += count(&log, "leases released on shutdown");
    }
    assert!(released > 0);
    let steps = store.steps_list(run).await.unwrap();
    assert!(steps.iter().all(|s| s.status != workflow_core::StepState::Running), "no lease left to expire");
    let restart = Instant::now();
    let next = WorkerProc::spawn(&url, &["--concurrency", "64", "--lease-ttl", "60s"]);
    assert_eq!(wait_run(&store, run, Duration::from_secs(30)).await.unwrap(), RunState::Succeeded);
    let took = restart.elapsed();
    next.term(Duration::from_secs(30));
    assert!(took < Duration::from_secs(30), "resumed without waiting for the 60 s leases");
    let expired: (i64,) = sqlx::query_as("SELECT count(*) FROM wf.step_events WHERE event = 'lease_expired'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(expired.0, 0, "no step waited for lease expiry");
    let dups = assert_invariants(&pool).await;
    record(&format!(
        "sigterm: 2 workers stopped under load, finished elsewhere in {:.1} s, lease expiries 0, duplicate effects {dups}",
        took.as_secs_f64()
    ));
}
