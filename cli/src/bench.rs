//! `wf bench engine`: throughput, scale, pickup latency and recovery of the
//! durable path, next to this database's single-row-commit ceiling
//! (`pgbench -N`, 16 clients) measured in the same run.
//!
//! Everything runs in a scratch database (`wf_bench`) on the same server,
//! dropped and re-created at the start.

use crate::connect;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgPool};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use workflow_core::{
    Registry, Resources, RunId, Step, StepContext, StepError, StepOutcome, Store, Worker, WorkerConfig,
};
use workflow_pg::PgStore;

/// Options of `wf bench engine`.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Steps per no-op throughput scenario (and per scale row).
    #[arg(long, default_value_t = 200_000)]
    pub steps: i64,
    /// Steps per transactional throughput scenario (each pays a commit).
    #[arg(long, default_value_t = 50_000)]
    pub txn_steps: i64,
    /// Seconds of `pgbench -N` right before each row, its own baseline.
    #[arg(long, default_value_t = 5)]
    pub baseline_secs: u32,
    /// Fewer scenarios (1 and 4 processes at concurrency 32 only) and a smaller scale test.
    #[arg(long)]
    pub quick: bool,
    /// Largest number of waiting steps in the scale test.
    #[arg(long, default_value_t = 1_000_000)]
    pub scale_max: i64,
    /// Pickup latency samples.
    #[arg(long, default_value_t = 1000)]
    pub latency_samples: usize,
    /// Skip the kill -9 recovery measurement (it takes about the lease ttl).
    #[arg(long)]
    pub no_recovery: bool,
    /// Skip the throughput scenarios (run scale, latency and recovery only).
    #[arg(long)]
    pub no_throughput: bool,
    /// Run only the throughput and comparison scenarios whose name contains this text.
    #[arg(long)]
    pub only: Option<String>,
}

/// One measured line.
#[derive(Debug, Serialize)]
pub struct Row {
    /// What was measured.
    pub scenario: String,
    /// Steps executed.
    pub steps: i64,
    /// Wall time.
    pub seconds: f64,
    /// Steps per second.
    pub steps_per_s: f64,
    /// The single-row-commit ceiling measured right before this row (tps).
    pub baseline_tps: f64,
    /// Steps per second against `baseline_tps`.
    pub ratio: f64,
    /// Steps per second against the median of every baseline run of the
    /// report (a five-second run can itself be an outlier).
    pub ratio_to_median: f64,
    /// History events per step.
    pub events_per_step: f64,
    /// Steps completed more than once (must be 0).
    pub duplicate_completions: i64,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// pgbench -N tps at 16 clients (or our own loop): the median of the
    /// runs made before each row.
    pub baseline_tps: f64,
    /// Each baseline run (tps), in order.
    pub baseline_runs_tps: Vec<f64>,
    /// How the baseline was measured.
    pub baseline: String,
    /// Durability settings in force.
    pub settings: HashMap<String, String>,
    /// Throughput and scale rows.
    pub rows: Vec<Row>,
    /// Pickup latency p50 (ms).
    pub pickup_p50_ms: f64,
    /// Pickup latency p99 (ms).
    pub pickup_p99_ms: f64,
    /// The floor under pickup, sampled between the probes on the same
    /// clock: from a NOTIFY's COMMIT returning until a listening connection
    /// of this process has received it and then committed one single-row
    /// UPDATE (a durable claim is at least that commit) (p50, ms).
    pub floor_p50_ms: f64,
    /// The same, p99 (ms).
    pub floor_p99_ms: f64,
    /// Seconds from kill -9 to the step running elsewhere.
    pub recovery_s: Option<f64>,
    /// Lease ttl of the recovery test.
    pub recovery_ttl_s: f64,
}

/// Runs the benchmark and prints the table (or JSON).
pub async fn engine(url: &str, args: EngineArgs, json_out: bool, out: &mut dyn Write) -> Result<()> {
    let bench_url = scratch_db(url, "wf_bench").await?;
    let pool = connect::bulk(&bench_url).await?;
    for m in crate::migrators() {
        m.run(&pool).await?;
    }
    let settings = durability(&pool).await?;
    // The ceiling is measured again right before every row: on a shared
    // two-core machine it moved by a third within one run, more than the
    // engine did, so a ratio is only as good as its baseline is close.
    let mut base = Baseline::prepare(url, args.baseline_secs).await?;
    let mut rows = Vec::new();
    let noop = json!({"type": "synthetic.task", "index": 0, "spec": {"sleep_ms": 0, "fail_rate": 0.0, "seed": 0, "effect": false}});
    let txn = json!({"type": "synthetic.task", "index": 0, "spec": {"sleep_ms": 0, "fail_rate": 0.0, "seed": 0, "effect": true}});
    let mut scenarios: Vec<(&str, i32, &serde_json::Value, i64, u32, u32)> = Vec::new();
    let conc: &[u32] = if args.quick { &[32] } else { &[8, 64] };
    for &(label, chain, def, steps) in &[
        ("1-step no-op", 1, &noop, args.steps),
        ("4-step chain no-op", 4, &noop, args.steps),
        ("1-step transactional", 1, &txn, args.txn_steps),
        ("4-step chain transactional", 4, &txn, args.txn_steps),
    ] {
        for procs in [1u32, 4] {
            for &c in conc {
                scenarios.push((label, chain, def, steps, procs, c));
            }
        }
    }
    let mut seq = 0;
    if args.no_throughput {
        scenarios.clear();
    }
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    for (label, chain, def, steps, procs, c) in scenarios {
        let name = format!("{label}, {procs} proc x {c}");
        if !wanted(&name) {
            continue;
        }
        seq += 1;
        let tps = base.measure().await?;
        eprintln!("throughput: {label}, {procs} process(es) x concurrency {c} (baseline {tps:.0} tps) ...");
        let row = throughput(&bench_url, &pool, &format!("bench-{seq}"), chain, def, steps, procs, c, &[]).await?;
        rows.push(finish_row(name, row, tps));
    }
    // What each optimisation buys: the same workload with it turned off.
    let comparisons: &[(&str, i32, &[&str])] = if args.no_throughput {
        &[]
    } else {
        &[
            ("1-step no-op, 4 proc x 32, one batch call in flight", 1, &["--max-flushes", "1"][..]),
            ("1-step no-op, 4 proc x 32, two claims in flight", 1, &["--max-claims", "2"][..]),
            ("1-step no-op, 4 proc x 32, no batch linger", 1, &["--batch-linger", "0s"][..]),
            ("4-step chain no-op, 4 proc x 32, NOTIFY off", 4, &["--notify", "off"][..]),
            ("4-step chain no-op, 4 proc x 32, NOTIFY on", 4, &[][..]),
        ]
    };
    for &(label, chain, extra) in comparisons {
        if !wanted(label) {
            continue;
        }
        seq += 1;
        let tps = base.measure().await?;
        eprintln!("comparison: {label} (baseline {tps:.0} tps) ...");
        let row =
            throughput(&bench_url, &pool, &format!("bench-{seq}"), chain, &noop, args.steps, 4, 32, extra).await?;
        rows.push(finish_row(label.to_owned(), row, tps));
    }
    // Before the scale rows: after them autovacuum works through millions
    // of ballast rows for minutes on the same two cores, which is what a
    // p99 measured then would show.
    eprintln!("latency: {} single steps at idle workers ...", args.latency_samples);
    let lat = latency(&bench_url, args.latency_samples).await?;
    let levels: Vec<i64> = [10_000, 100_000, 1_000_000].into_iter().filter(|&n| n <= args.scale_max).collect();
    let mut waiting = 0;
    let mut finished_ballast = 0;
    for n in levels {
        let history = if finished_ballast == 0 { args.scale_max.min(1_000_000) } else { 0 };
        eprintln!("scale: {n} steps waiting, {} finished in history ...", finished_ballast + history);
        let mut conn = pool.acquire().await?;
        workflow_pg::fixtures::ballast_insert(&mut conn, "bench-idle", n - waiting, history).await?;
        // Measure the steady state, not the one-off upkeep of a bulk load:
        // autovacuum would otherwise process millions of fresh rows, and a
        // checkpoint write them out, on the same two cores during the run.
        sqlx::query("VACUUM (ANALYZE) wf.steps, wf.step_events, wf.runs, wf.ready_queue, wf.leases")
            .execute(&mut *conn)
            .await?;
        if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut *conn).await {
            eprintln!("  (no CHECKPOINT before the run: {e})");
        }
        drop(conn);
        waiting = n;
        finished_ballast += history;
        seq += 1;
        let tps = base.measure().await?;
        let row = throughput(&bench_url, &pool, &format!("bench-{seq}"), 1, &noop, args.steps, 4, 32, &[]).await?;
        rows.push(finish_row(
            format!("1-step no-op, 4 proc x 32, {n} waiting + {finished_ballast} finished"),
            row,
            tps,
        ));
    }
    let ttl = 15.0;
    let recovery_s = if args.no_recovery {
        None
    } else {
        eprintln!("recovery: kill -9 a worker holding a step (lease ttl {ttl} s) ...");
        Some(recovery(&bench_url, &pool).await?)
    };
    if base.runs.is_empty() {
        base.measure().await?;
    }
    let mut sorted = base.runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    for row in &mut rows {
        row.ratio_to_median = row.steps_per_s / median;
    }
    let report = Report {
        baseline_tps: median,
        baseline_runs_tps: base.runs.clone(),
        baseline: base.describe(),
        settings,
        rows,
        pickup_p50_ms: lat.pickup.0,
        pickup_p99_ms: lat.pickup.1,
        floor_p50_ms: lat.floor.0,
        floor_p99_ms: lat.floor.1,
        recovery_s,
        recovery_ttl_s: ttl,
    };
    base.drop_db().await?;
    if json_out {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_report(out, &report)?;
    }
    Ok(())
}

fn finish_row(scenario: String, (steps, seconds, events, dups): (i64, f64, i64, i64), baseline_tps: f64) -> Row {
    let sps = steps as f64 / seconds;
    eprintln!(
        "  {steps} steps in {seconds:.2} s: {sps:.0} steps/s ({:.2}x the baseline), duplicates {dups}",
        sps / baseline_tps
    );
    Row {
        scenario,
        steps,
        seconds,
        steps_per_s: sps,
        baseline_tps,
        ratio: sps / baseline_tps,
        ratio_to_median: 0.0,
        events_per_step: events as f64 / steps as f64,
        duplicate_completions: dups,
    }
}

fn print_report(out: &mut dyn Write, r: &Report) -> Result<()> {
    let (lo, hi) = r.baseline_runs_tps.iter().fold((f64::MAX, 0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    writeln!(
        out,
        "baseline: {}, right before each row: median {:.0} tps over {} runs ({lo:.0} to {hi:.0})",
        r.baseline,
        r.baseline_tps,
        r.baseline_runs_tps.len(),
    )?;
    let mut s: Vec<String> = r.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.sort();
    writeln!(out, "settings: {}\n", s.join(" "))?;
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    t.set_header([
        "scenario",
        "steps",
        "seconds",
        "steps/s",
        "baseline tps",
        "x baseline",
        "x median",
        "events/step",
        "dup completions",
    ]);
    for row in &r.rows {
        t.add_row(vec![
            row.scenario.clone(),
            row.steps.to_string(),
            format!("{:.2}", row.seconds),
            format!("{:.0}", row.steps_per_s),
            format!("{:.0}", row.baseline_tps),
            format!("{:.2}", row.ratio),
            format!("{:.2}", row.ratio_to_median),
            format!("{:.2}", row.events_per_step),
            row.duplicate_completions.to_string(),
        ]);
    }
    writeln!(out, "{t}\n")?;
    writeln!(
        out,
        "pickup latency (commit -> step entered): p50 {:.2} ms, p99 {:.2} ms; \
         floor (NOTIFY received, then one single-row UPDATE committed), sampled between them: \
         p50 {:.2} ms, p99 {:.2} ms",
        r.pickup_p50_ms, r.pickup_p99_ms, r.floor_p50_ms, r.floor_p99_ms
    )?;
    match r.recovery_s {
        Some(s) => {
            writeln!(out, "recovery after kill -9: {s:.1} s (lease ttl {:.0} s, rescue every 2 s)", r.recovery_ttl_s)?
        }
        None => writeln!(out, "recovery: skipped")?,
    }
    Ok(())
}

/// Drops and re-creates database `name` on the server of `url`; returns its URL.
async fn scratch_db(url: &str, name: &str) -> Result<String> {
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", connect::redact(url)))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut admin)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .context("the benchmark needs CREATEDB")?;
    Ok(with_db(url, name))
}

/// `url` with its database name replaced.
pub fn with_db(url: &str, db: &str) -> String {
    let (head, query) = url.split_once('?').map(|(h, q)| (h, format!("?{q}"))).unwrap_or((url, String::new()));
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    format!("{root}/{db}{query}")
}

async fn durability(pool: &PgPool) -> Result<HashMap<String, String>> {
    let mut m = HashMap::new();
    for s in ["fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_connections"] {
        let (v,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SHOW {s}"))).fetch_one(pool).await?;
        m.insert(s.to_owned(), v);
    }
    Ok(m)
}

/// The single-row-commit ceiling of the server: `pgbench -N` at 16
/// clients on a scratch database of its own, or, without pgbench, a
/// 16-connection single-row UPDATE loop of our own.
struct Baseline {
    url: String,
    db_url: String,
    pgbench: Option<std::path::PathBuf>,
    secs: u32,
    /// Every measurement so far (tps).
    runs: Vec<f64>,
}

impl Baseline {
    /// Creates and fills the scratch database (`pgbench -i -s 16`).
    async fn prepare(url: &str, secs: u32) -> Result<Self> {
        let db_url = scratch_db(url, "wf_bench_pgbench").await?;
        let pgbench = crate::embedded::find_bindir().ok().map(|d| d.join("pgbench")).filter(|p| p.is_file());
        if let Some(pgbench) = &pgbench {
            eprintln!("baseline: pgbench -i -s 16 ...");
            let init = Command::new(pgbench).args(["-i", "-q", "-s", "16", &db_url]).output()?;
            if !init.status.success() {
                bail!("pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr).trim());
            }
        } else {
            let pool = connect::one_shot(&db_url).await?;
            sqlx::query("CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL)").execute(&pool).await?;
            sqlx::query("INSERT INTO acct SELECT g, 0 FROM generate_series(1, 100000) g").execute(&pool).await?;
        }
        // Start from a clean, analyzed table: the first run after a bulk
        // load would also set hint bits and vacuum it.
        let pool = connect::one_shot(&db_url).await?;
        sqlx::raw_sql("VACUUM ANALYZE").execute(&pool).await?;
        pool.close().await;
        Ok(Self { url: url.to_owned(), db_url, pgbench, secs: secs.max(1), runs: Vec::new() })
    }

    fn describe(&self) -> String {
        match self.pgbench {
            Some(_) => format!("pgbench -N -c 16 -j 2 -T {} -s 16", self.secs),
            None => format!("own single-row UPDATE loop, 16 connections, {} s (pgbench not installed)", self.secs),
        }
    }

    /// One measurement (tps), remembered.
    async fn measure(&mut self) -> Result<f64> {
        let tps = match &self.pgbench {
            Some(pgbench) => {
                let secs = self.secs.to_string();
                let run = Command::new(pgbench)
                    .args(["-n", "-N", "-c", "16", "-j", "2", "-T", &secs, &self.db_url])
                    .output()?;
                let text = String::from_utf8_lossy(&run.stdout);
                text.lines()
                    .find(|l| l.starts_with("tps ="))
                    .and_then(|l| l.split_whitespace().nth(2))
                    .and_then(|v| v.parse::<f64>().ok())
                    .with_context(|| format!("cannot read pgbench output: {text}"))?
            }
            None => self.own_loop().await?,
        };
        self.runs.push(tps);
        Ok(tps)
    }

    async fn own_loop(&self) -> Result<f64> {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(16).connect(&self.db_url).await?;
        let secs = f64::from(self.secs);
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    let id = fastrand::i32(1..=100_000);
                    sqlx::query("UPDATE acct SET balance = balance + 1 WHERE id = $1").bind(id).execute(&pool).await?;
                    n += 1;
                }
                Ok::<_, sqlx::Error>(n)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await??;
        }
        pool.close().await;
        Ok(total as f64 / secs)
    }

    async fn drop_db(&self) -> Result<()> {
        let mut admin = sqlx::PgConnection::connect(&self.url).await?;
        sqlx::query("DROP DATABASE IF EXISTS wf_bench_pgbench WITH (FORCE)").execute(&mut admin).await?;
        Ok(())
    }
}

fn spawn_workers(url: &str, procs: u32, concurrency: u32, ttl: &str, extra: &[&str]) -> Result<Vec<Child>> {
    let exe = std::env::current_exe()?;
    (0..procs)
        .map(|_| {
            Command::new(&exe)
                .args(["worker", "--concurrency", &concurrency.to_string(), "--lease-ttl", ttl])
                .args(extra)
                .env("DATABASE_URL", url)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start a worker process")
        })
        .collect()
}

fn stop_workers(children: Vec<Child>) {
    for mut c in children {
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let _ = c.wait();
    }
}

/// Starts idle worker processes, runs a warm-up batch through them, inserts the
/// runs in one commit, and times
/// until every run of `tag` has finished. Returns (steps, seconds, events, duplicates).
#[allow(clippy::too_many_arguments)]
async fn throughput(
    url: &str,
    pool: &PgPool,
    tag: &str,
    chain: i32,
    def: &serde_json::Value,
    steps: i64,
    procs: u32,
    concurrency: u32,
    extra: &[&str],
) -> Result<(i64, f64, i64, i64)> {
    let (before,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf.workers").fetch_one(pool).await?;
    let workers = spawn_workers(url, procs, concurrency, "15s", extra)?;
    // Let the workers register and go idle first.
    let registered = wait_until(Duration::from_secs(60), Duration::from_millis(100), || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf.workers").fetch_one(pool).await?;
        Ok(n >= before + i64::from(procs))
    })
    .await;
    if registered.is_err() {
        stop_workers(workers);
        bail!("worker processes did not register within 60 s");
    }
    // Warm up the same workers first: their control pools open their
    // connections and plan the engine's statements as they are first
    // needed, which is a one-time cost of a worker's life, not of a step.
    let warm_up = batch(pool, &format!("{tag}-warm-up"), WARM_UP_STEPS / i64::from(chain), chain, def).await;
    if let Err(e) = warm_up {
        stop_workers(workers);
        return Err(e.context("the warm-up runs did not finish"));
    }
    let runs = steps / i64::from(chain);
    let (ev_before,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf.step_events").fetch_one(pool).await?;
    let timed = batch(pool, tag, runs, chain, def).await;
    stop_workers(workers);
    let seconds = timed.context("the runs did not finish")?;
    let (ev_after,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf.step_events").fetch_one(pool).await?;
    let (dups,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT e.step_id FROM wf.step_events e JOIN wf.runs r ON r.id = e.run_id
         WHERE r.workflow = $1 AND e.event = 'succeeded' GROUP BY e.step_id HAVING count(*) > 1) d",
    )
    .bind(tag)
    .fetch_one(pool)
    .await?;
    Ok((runs * i64::from(chain), seconds, ev_after - ev_before, dups))
}

/// Steps run through every throughput scenario's workers before the timed ones.
const WARM_UP_STEPS: i64 = 5_000;

/// Inserts `runs` chains of `chain` steps as workflow `tag` in one commit,
/// and returns the seconds from that commit until every one has finished.
async fn batch(pool: &PgPool, tag: &str, runs: i64, chain: i32, def: &serde_json::Value) -> Result<f64> {
    let mut tx = pool.begin().await?;
    workflow_pg::fixtures::chains_insert(&mut tx, tag, runs, chain, "synthetic.task", def, "default").await?;
    let (last,): (i64,) = sqlx::query_as("SELECT max(id) FROM wf.steps").fetch_one(&mut *tx).await?;
    tx.commit().await?;
    let start = Instant::now();
    // Poll the last step inserted (a primary-key lookup, every 10 ms: the
    // runs take a second or two, so a coarser tick would be a coarser
    // clock) until it has ended, and only then count unfinished runs: a
    // count over all runs at every tick would load the server being measured.
    wait_until(Duration::from_secs(1800), Duration::from_millis(10), || async {
        let (ended,): (bool,) =
            sqlx::query_as("SELECT status NOT IN ('ready', 'running', 'blocked') FROM wf.steps WHERE id = $1")
                .bind(last)
                .fetch_one(pool)
                .await?;
        if !ended {
            return Ok(false);
        }
        let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM wf.runs WHERE workflow = $1 AND status = 'running'")
            .bind(tag)
            .fetch_one(pool)
            .await?;
        Ok(left == 0)
    })
    .await?;
    Ok(start.elapsed().as_secs_f64())
}

/// Polls `f` every `every` until it holds or `limit` has passed.
async fn wait_until<F, Fut>(limit: Duration, every: Duration, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    while !f().await? {
        if start.elapsed() > limit {
            bail!("timed out after {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// When each probe step was entered, and a wake-up for the waiting client
/// (no busy polling: on two cores it would steal the server's CPU).
fn probes() -> &'static (Mutex<HashMap<RunId, Instant>>, tokio::sync::Notify) {
    static P: OnceLock<(Mutex<HashMap<RunId, Instant>>, tokio::sync::Notify)> = OnceLock::new();
    P.get_or_init(Default::default)
}

/// Records the moment its code is entered (for the latency benchmark).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Probe {}

#[typetag::serde(name = "bench.probe")]
#[async_trait::async_trait]
impl Step for Probe {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let entered = Instant::now();
        probes().0.lock().expect("probes").insert(ctx.run_id, entered);
        probes().1.notify_one();
        Ok(StepOutcome::done())
    }
}

/// p50 and p99 (ms) of pickup and of its floor.
struct Latency {
    pickup: (f64, f64),
    floor: (f64, f64),
}

/// Pickup latency with an in-process worker, on one monotonic clock, and
/// between its samples the same clock over its floor: a NOTIFY received,
/// then one single-row UPDATE committed, what any LISTEN-woken durable
/// claim pays on this machine at least.
async fn latency(url: &str, samples: usize) -> Result<Latency> {
    let store = PgStore::new(connect::one_shot(url).await?);
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen("wf_bench_ping").await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.bench_ping (id int PRIMARY KEY, n bigint NOT NULL); \
         INSERT INTO public.bench_ping VALUES (1, 0) ON CONFLICT DO NOTHING",
    )
    .execute(store.pool())
    .await?;
    let registry = Registry::new().step_type("bench.probe");
    // A queue of its own, so no other worker on the server takes the probes.
    let config = WorkerConfig {
        queues: vec!["bench-latency".into()],
        concurrency: 4,
        host: "bench".into(),
        poll_interval: Duration::from_secs(5),
        ..WorkerConfig::default()
    };
    let control = PgStore::new(connect::control(url, &config)?);
    control.start_listener();
    let worker = Worker::new(Arc::new(control), registry.clone(), config, Resources::new())?;
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut wf = workflow_core::WorkflowBuilder::new("bench-latency", 1);
    wf.step("probe", Probe {}).queue("bench-latency");
    let plan = workflow_core::store::RunInsert::from_workflow(&wf.build()?, Default::default(), "bench".into())?;
    let mut lat = Vec::with_capacity(samples);
    let mut ping = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = store.run_insert(plan.clone()).await?.id;
        let committed = Instant::now();
        let entered = loop {
            if let Some(t) = probes().0.lock().expect("probes").remove(&id) {
                break t;
            }
            if tokio::time::timeout(Duration::from_secs(10), probes().1.notified()).await.is_err() {
                bail!("a probe step was not picked up within 10 s");
            }
        };
        lat.push(entered.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(15)).await;
        sqlx::query("SELECT pg_notify('wf_bench_ping', '')").execute(store.pool()).await?;
        let committed = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .context("a NOTIFY was not received within 10 s")??;
        sqlx::query("UPDATE public.bench_ping SET n = n + 1 WHERE id = 1").execute(store.pool()).await?;
        ping.push(committed.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    stop.cancel();
    handle.await??;
    Ok(Latency { pickup: p50_p99(lat), floor: p50_p99(ping) })
}

fn p50_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.99))
}

/// kill -9 a worker holding a step; seconds until the step is claimed elsewhere.
async fn recovery(url: &str, pool: &PgPool) -> Result<f64> {
    let first = spawn_workers(url, 1, 1, "15s", &[])?;
    let mut tx = pool.begin().await?;
    let slow = json!({"type": "synthetic.task", "index": 0, "spec": {"sleep_ms": 120000, "fail_rate": 0.0, "seed": 0, "effect": false}});
    workflow_pg::fixtures::chains_insert(&mut tx, "bench-recovery", 1, 1, "synthetic.task", &slow, "default").await?;
    tx.commit().await?;
    let claims = || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM wf.step_events e JOIN wf.runs r ON r.id = e.run_id
             WHERE r.workflow = 'bench-recovery' AND e.event = 'claimed'",
        )
        .fetch_one(pool)
        .await?;
        Ok::<_, anyhow::Error>(n)
    };
    wait_until(Duration::from_secs(30), Duration::from_millis(100), || async { Ok(claims().await? >= 1) }).await?;
    let second = spawn_workers(url, 1, 1, "15s", &[])?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for mut c in first {
        c.kill()?;
        c.wait()?;
    }
    let killed = Instant::now();
    wait_until(Duration::from_secs(60), Duration::from_millis(100), || async { Ok(claims().await? >= 2) }).await?;
    let secs = killed.elapsed().as_secs_f64();
    let store = PgStore::new(pool.clone());
    let (id,): (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM wf.runs WHERE workflow = 'bench-recovery'").fetch_one(pool).await?;
    store
        .run_cancel(workflow_core::store::OperatorAction {
            run: RunId(id),
            step: None,
            actor: "bench".into(),
            reason: Some("benchmark done".into()),
        })
        .await?;
    stop_workers(second);
    Ok(secs)
}
