//! Shared helpers: per-test database URLs, in-process workers, the `wf` binary.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use workflow_core::store::RunInsert;
use workflow_core::worker::WorkerStats;
use workflow_core::{Params, Registry, Resources, RunId, RunState, Store, Worker, WorkerConfig, WorkerError};
use workflow_pg::PgStore;

/// Applies every migration `wf migrate` applies.
pub async fn migrate(pool: &PgPool) {
    for m in wf_cli::migrators() {
        m.run(pool).await.expect("migrate");
    }
}

/// The URL of the database behind `pool` (a `#[sqlx::test]` database).
pub async fn db_url(pool: &PgPool) -> String {
    let (db,): (String,) = sqlx::query_as("SELECT current_database()").fetch_one(pool).await.unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL must point at the test server");
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let root = head.rsplit_once('/').map(|(r, _)| r.to_owned()).unwrap_or(head);
    format!("{root}/{db}{query}")
}

/// A pool of its own on `url`.
pub async fn pool(url: &str, max: u32) -> PgPool {
    PgPoolOptions::new().max_connections(max).connect(url).await.expect("connect")
}

/// A worker running in this process until stopped.
pub struct TestWorker {
    pub handle: JoinHandle<Result<Arc<WorkerStats>, WorkerError>>,
    pub shutdown: CancellationToken,
}

impl TestWorker {
    pub async fn stop(self) -> Arc<WorkerStats> {
        self.shutdown.cancel();
        self.handle.await.expect("worker task").expect("worker")
    }
}

/// Starts a worker with its own control and work pools.
pub async fn start_worker(url: &str, registry: Registry, config: WorkerConfig) -> TestWorker {
    let store = PgStore::new(pool(url, 3).await);
    store.start_listener();
    let mut res = Resources::new();
    res.insert(pool(url, config.concurrency as u32 + 2).await);
    let worker = Worker::new(Arc::new(store), registry, config, res).expect("worker");
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    TestWorker { handle, shutdown }
}

/// A worker configuration for tests: quick polls and rescues.
pub fn config(concurrency: usize, ttl: Duration) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        lease_ttl: ttl,
        poll_interval: Duration::from_millis(200),
        rescue_interval: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(5),
        host: "test".into(),
        ..WorkerConfig::default()
    }
}

/// Starts a run of a built-in workflow.
pub async fn start_run(store: &PgStore, workflow: &str, params: &[&str]) -> RunId {
    let registry = wf_cli::builtin_registry();
    let entry = registry.workflow_entry(workflow).expect("workflow");
    let params = Params::parse(params).unwrap();
    let wf = (entry.build)(&params).unwrap();
    let insert = RunInsert::from_workflow(&wf, params, "tester".into()).unwrap();
    store.run_insert(insert).await.unwrap().id
}

/// Waits for the run to end, or panics after `limit` with its status.
pub async fn wait_run(store: &PgStore, run: RunId, limit: Duration) -> RunState {
    let start = Instant::now();
    loop {
        let info = store.run_get(run).await.unwrap();
        if info.status != RunState::Running {
            return info.status;
        }
        assert!(start.elapsed() < limit, "run {run} still running after {limit:?}: {:?}", info.step_counts);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the `wf` binary with `args` against `url`.
pub fn wf(url: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wf"));
    c.args(args).env("RUST_LOG", "warn");
    match url {
        Some(u) => c.env("DATABASE_URL", u),
        None => c.env_remove("DATABASE_URL"),
    };
    c.output().expect("run wf")
}

/// Runs `wf` off the async thread, so in-process workers keep running meanwhile.
pub async fn wf_async(url: &str, args: &[&str]) -> Output {
    let (url, args): (String, Vec<String>) = (url.to_owned(), args.iter().map(|s| (*s).to_owned()).collect());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wf(Some(&url), &args)
    })
    .await
    .expect("wf task")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
