//! A private cluster per test, worker processes, and the exactly-once checks.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use wf_cli::embedded::Embedded;
use workflow_core::store::RunInsert;
use workflow_core::{Params, RunId, RunState, Store};
use workflow_pg::PgStore;

/// A cluster of the test's own, stopped and removed on drop.
pub struct Cluster {
    pub pg: Embedded,
    dir: PathBuf,
}

impl Cluster {
    /// Creates and starts a cluster, creates the `wf` database, migrates it.
    pub async fn start(tag: &str) -> (Self, String, PgPool) {
        let dir = PathBuf::from(format!("/tmp/wf-faults-{tag}-{}", uuid::Uuid::new_v4().simple()));
        let pg = Embedded::at(dir.clone()).expect("PostgreSQL binaries are required for the fault suite");
        let url = pg.ensure_started().await.expect("start the test's own cluster");
        let out = wf(&url, &["migrate"]);
        assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
        let pool = PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap();
        (Self { pg, dir }, url, pool)
    }

    /// Stops (fast shutdown: connections are cut) and starts the server again.
    pub async fn restart(&self, down_for: Duration) {
        assert!(self.pg.stop().expect("stop"), "the cluster was running");
        tokio::time::sleep(down_for).await;
        self.pg.ensure_started().await.expect("start again");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `wf` against `url`.
pub fn wf(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wf")).args(args).env("DATABASE_URL", url).output().expect("run wf")
}

/// A `wf worker` process logging JSON lines to its own file.
pub struct WorkerProc {
    pub child: Child,
    pub log: PathBuf,
}

impl WorkerProc {
    pub fn spawn(url: &str, args: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!("wf-worker-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_wf"))
            .args(["--log-format", "json", "worker"])
            .args(args)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn worker");
        Self { child, log }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success(), "kill -{sig}");
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.take_log()
    }

    /// SIGTERM, wait for exit (at most `limit`), return the log.
    pub fn term(mut self, limit: Duration) -> (Duration, String) {
        let start = Instant::now();
        self.signal("TERM");
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(start.elapsed() < limit, "worker did not exit within {limit:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        (start.elapsed(), self.take_log())
    }

    fn take_log(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        s
    }
}

/// Counts log lines whose message contains `needle`.
pub fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Starts a run of a built-in workflow.
pub async fn start_run(store: &PgStore, workflow: &str, params: &[&str]) -> RunId {
    let registry = wf_cli::builtin_registry();
    let entry = registry.workflow_entry(workflow).unwrap();
    let params = Params::parse(params).unwrap();
    let wf = (entry.build)(&params).unwrap();
    store.run_insert(RunInsert::from_workflow(&wf, params, "faults".into()).unwrap()).await.unwrap().id
}

/// The run's status once it ends, or its counts when `limit` passes.
pub async fn wait_run(store: &PgStore, run: RunId, limit: Duration) -> Result<RunState, String> {
    let start = Instant::now();
    loop {
        match store.run_get(run).await {
            Ok(i) if i.status != RunState::Running => return Ok(i.status),
            Ok(i) if start.elapsed() > limit => return Err(format!("still running: {:?}", i.step_counts)),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await.unwrap();
    n
}

/// The durability invariants; returns the number of duplicate effects (0).
pub async fn assert_invariants(pool: &PgPool) -> i64 {
    let not_once = scalar(
        pool,
        "SELECT count(*) FROM wf.steps s WHERE (SELECT count(*) FROM wf.step_events e
          WHERE e.step_id = s.id AND e.event IN ('succeeded', 'expanded')) <> 1",
    )
    .await;
    assert_eq!(not_once, 0, "every step has exactly one successful completion");
    let dup = scalar(
        pool,
        "SELECT count(*) FROM (SELECT 1 FROM wf_synthetic.effects GROUP BY run_id, step HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(dup, 0, "every effect exists exactly once");
    let missing = scalar(
        pool,
        "SELECT count(*) FROM wf.steps s WHERE s.step_type = 'synthetic.task'
          AND NOT EXISTS (SELECT 1 FROM wf_synthetic.effects f WHERE f.run_id = s.run_id AND f.step = s.name)",
    )
    .await;
    assert_eq!(missing, 0, "every task's effect exists");
    let stale = scalar(
        pool,
        "SELECT count(*) FROM wf_synthetic.effects f JOIN wf.steps s ON s.run_id = f.run_id AND s.name = f.step
          WHERE f.lease_token <> s.lease_token",
    )
    .await;
    assert_eq!(stale, 0, "no effect came from a superseded lease token");
    let open = scalar(
        pool,
        "SELECT count(*) FROM wf.step_events c WHERE c.event = 'claimed' AND NOT EXISTS (
           SELECT 1 FROM wf.step_events e WHERE e.step_id = c.step_id AND e.lease_token = c.lease_token
             AND e.event IN ('succeeded', 'expanded', 'failed', 'timed_out', 'lease_expired', 'released', 'cancelled'))",
    )
    .await;
    assert_eq!(open, 0, "the history shows every lease's end");
    let queue = workflow_pg::queue_mismatches(pool).await.unwrap();
    assert_eq!(queue, 0, "every step's ready-queue and lease rows agree with its status");
    dup
}

/// Appends a line of figures to target/reliability-figures.txt.
pub fn record(line: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/reliability-figures.txt");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    writeln!(f, "{line}").unwrap();
    println!("{line}");
}
