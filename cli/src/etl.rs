//! The ETL's commands: `wf feeds generate`, `wf audit verify|trace` and
//! `wf bench etl`, and [`run_day`], which runs `daily_transactions` for one
//! landing directory with in-process workers (used by `wf demo` and the
//! benchmark).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use pipelines::generate::{GenSpec, Manifest, generate};
use tokio_util::sync::CancellationToken;
use workflow_core::store::{RunInsert, StepInfo};
use workflow_core::{Params, Registry, Resources, RunId, RunState, Store, Worker, WorkerConfig};
use workflow_pg::PgStore;

use crate::commands::{os_user, signals};
use crate::connect;

/// `wf feeds generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Business date (YYYY-MM-DD).
    #[arg(long)]
    pub date: NaiveDate,
    /// Records over all five feeds, duplicates included.
    #[arg(long, value_parser = clap::value_parser!(u64).range(5..=1_000_000_000))]
    pub records: u64,
    /// Share of malformed records (half unparseable, half invalid).
    #[arg(long, default_value_t = 0.01)]
    pub malformed_rate: f64,
    /// Share of records re-delivering an earlier valid record.
    #[arg(long, default_value_t = 0.01)]
    pub duplicate_rate: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory (created if needed).
    #[arg(long)]
    pub out: PathBuf,
}

/// `wf audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the lineage hash chains; exit 1 naming the first broken link.
    Verify {
        /// Only this business date.
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// One warehouse row's path back to its source file and line.
    Trace {
        /// The row's txn_key, 64 hex digits.
        txn: String,
    },
}

/// `wf bench etl`.
#[derive(Debug, Args)]
pub struct BenchEtlArgs {
    /// Records in the generated day.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(5..=1_000_000_000))]
    pub records: u64,
    /// In-process workers (each runs up to 2 steps at once).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Where to write the generated files (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn spec(a: &GenerateArgs) -> GenSpec {
    GenSpec {
        date: a.date,
        records: a.records,
        malformed_rate: a.malformed_rate,
        duplicate_rate: a.duplicate_rate,
        seed: a.seed,
    }
}

/// `wf feeds generate`: writes the day and prints the manifest.
pub fn feeds_generate(args: GenerateArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    let m = generate(&spec(&args), &args.out)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&m)?)?;
    } else {
        print_manifest(out, &m, &args.out)?;
    }
    Ok(())
}

fn print_manifest(out: &mut dyn Write, m: &Manifest, dir: &Path) -> Result<()> {
    writeln!(out, "wrote {} ({}, seed {})", dir.display(), m.date, m.seed)?;
    writeln!(
        out,
        "{:<8} {:>10} {:>10} {:>11} {:>8} {:>10}",
        "feed", "records", "valid", "unparseable", "invalid", "duplicates"
    )?;
    for (feed, c) in m.feeds.iter().map(|(f, c)| (f.as_str(), *c)).chain([("total", m.total())]) {
        writeln!(
            out,
            "{feed:<8} {:>10} {:>10} {:>11} {:>8} {:>10}",
            c.records, c.valid, c.unparseable, c.invalid, c.duplicates
        )?;
    }
    Ok(())
}

/// `wf audit verify|trace`.
pub async fn audit(url: Option<&str>, cmd: AuditCommand, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let url = connect::resolve(url).await?;
    let pool = connect::one_shot(&url).await?;
    match cmd {
        AuditCommand::Verify { date } => {
            let chains = pipelines::audit::verify(&pool, date).await?;
            let broken = chains.iter().find_map(|c| c.broken.clone());
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&chains)?)?;
            } else {
                for c in &chains {
                    let seal = c.sealed.as_ref().map(|(n, _)| format!("sealed at {n}")).unwrap_or("unsealed".into());
                    let state = c.broken.as_deref().unwrap_or("ok");
                    writeln!(
                        out,
                        "{} {:<10} {:>9} links  {seal:<18} head {}  {state}",
                        c.business_date,
                        c.feed,
                        c.rows,
                        &c.head[..16]
                    )?;
                }
                if chains.is_empty() {
                    writeln!(out, "no lineage{}", date.map(|d| format!(" for {d}")).unwrap_or_default())?;
                }
            }
            match broken {
                Some(b) => bail!("audit chain broken: {b}"),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        AuditCommand::Trace { txn } => {
            let Some(t) = pipelines::audit::trace(&pool, &txn).await? else {
                bail!("no warehouse row with txn_key {txn}");
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&t)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let w = &t.warehouse;
            writeln!(out, "warehouse.fact_transaction {txn}")?;
            for k in [
                "business_date",
                "source_system",
                "account_id",
                "value_date",
                "direction",
                "amount_minor",
                "currency",
                "reference",
            ] {
                writeln!(out, "  {k:<14} {}", plain(&w[k]))?;
            }
            for l in &t.lineage {
                let f = |k: &str| plain(&l[k]);
                writeln!(out, "<- {} {} seq {}", f("business_date"), f("feed"), f("seq"))?;
                writeln!(
                    out,
                    "   file {} ({}) record {} line {}",
                    f("file_name"),
                    f("file_sha256"),
                    f("record"),
                    f("line")
                )?;
                writeln!(out, "   raw {} canonical {}", f("raw_sha256"), f("canonical_sha256"))?;
                writeln!(
                    out,
                    "   run {} step {} attempt {} transform v{}",
                    f("run_id"),
                    f("step"),
                    f("attempt"),
                    f("transform_version")
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A JSON value as plain text (strings without their quotes).
fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `daily_transactions` for `date` over `landing` with `workers`
/// in-process workers until the run ends.
pub async fn run_day(
    url: &str,
    registry: &Registry,
    date: NaiveDate,
    landing: &Path,
    workers: u32,
) -> Result<(PgStore, RunId, RunState)> {
    let pool = connect::one_shot(url).await?;
    for m in crate::migrators() {
        m.run(&pool).await.context("migration failed")?;
    }
    let store = PgStore::new(pool);
    let entry = registry.workflow_entry("daily_transactions").context("daily_transactions is not registered")?;
    let params = Params::parse([format!("date={date}"), format!("landing={}", landing.display())])?;
    let wf = (entry.build)(&params)?;
    let insert = RunInsert::from_workflow(&wf, params, os_user())?;
    let run = store.run_insert(insert).await?.id;
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let config = WorkerConfig { concurrency: 2, host: "etl".into(), ..WorkerConfig::default() };
        let control = PgStore::new(connect::control(url, &config)?);
        control.start_listener();
        let mut res = Resources::new();
        res.insert(connect::lazy(url, 4, None)?);
        let w = Worker::new(Arc::new(control), registry.clone(), config, res)?;
        handles.push(tokio::spawn(w.run(shutdown.clone())));
    }
    let status = loop {
        let info = store.run_get(run).await?;
        if info.status != RunState::Running || shutdown.is_cancelled() {
            break info.status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    shutdown.cancel();
    for h in handles {
        h.await.context("worker task")??;
    }
    Ok((store, run, status))
}

/// Prints the run's `etl.daily_report` rows (what its report step wrote).
pub async fn print_report(pool: &sqlx::PgPool, run: RunId, out: &mut dyn Write) -> Result<()> {
    let rows: Vec<(String, String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT feed, status, loaded, quarantined, audit_head FROM etl.daily_report WHERE run_id = $1 ORDER BY feed",
    )
    .bind(run.0)
    .fetch_all(pool)
    .await?;
    writeln!(out, "{:<10} {:<7} {:>10} {:>11}  audit head", "feed", "status", "loaded", "quarantined")?;
    for (feed, status, loaded, quarantined, head) in rows {
        writeln!(out, "{feed:<10} {status:<7} {loaded:>10} {quarantined:>11}  {}", head.unwrap_or_default())?;
    }
    Ok(())
}

fn stage_of(step: &StepInfo) -> Option<&str> {
    let (_, rest) = step.name.split_once('.')?;
    Some(rest.split('/').next().unwrap_or(rest))
}

fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn free_disk_kib(dir: &Path) -> Result<u64> {
    let out = std::process::Command::new("df").arg("-Pk").arg(dir).output().context("running df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let avail = text.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse().ok());
    avail.with_context(|| format!("cannot read free space of {}", dir.display()))
}

/// `wf bench etl`.
pub async fn bench(url: Option<&str>, args: BenchEtlArgs, registry: Registry, out: &mut dyn Write) -> Result<ExitCode> {
    let url = connect::resolve(url).await?;
    let pool = connect::one_shot(&url).await?;
    let mut settings = Vec::new();
    for name in ["fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "max_wal_size"] {
        let (v,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SHOW {name}"))).fetch_one(&pool).await?;
        settings.push((name, v));
    }
    for (name, v) in &settings[..2] {
        if v == "off" {
            bail!("refusing to benchmark with {name}=off: the figures would not be durable ones");
        }
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("wf-bench-etl-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Files ~120 B/record, database ~2.5 KiB/record (staging, canonical,
    // warehouse, lineage, indexes, WAL), counted on the output's file system.
    let need = args.records * 3;
    let free = free_disk_kib(&dir)?;
    if free < need {
        bail!("not enough free disk: {} MiB free, about {} MiB needed", free / 1024, need / 1024);
    }
    let date = NaiveDate::from_ymd_opt(2026, 11, 24).expect("valid date");
    let t0 = Instant::now();
    let day = GenerateArgs {
        date,
        records: args.records,
        malformed_rate: 0.01,
        duplicate_rate: 0.01,
        seed: 7,
        out: dir.clone(),
    };
    let m = generate(&spec(&day), &dir)?;
    let generated = t0.elapsed();
    writeln!(out, "generated {} records in {:.1}s into {}", args.records, generated.as_secs_f64(), dir.display())?;
    let t1 = Instant::now();
    let (store, run, status) = run_day(&url, &registry, date, &dir, args.workers).await?;
    let total = t1.elapsed();
    let steps = store.steps_list(run).await?;
    let records = args.records as f64;
    writeln!(
        out,
        "run {run}: {status:?} in {:.1}s ({:.0} records/s end to end, audit included)",
        total.as_secs_f64(),
        records / total.as_secs_f64()
    )?;
    for stage in ["land", "parse", "transform", "validate", "load"] {
        let of: Vec<&StepInfo> = steps.iter().filter(|s| stage_of(s) == Some(stage)).collect();
        let start = of.iter().filter_map(|s| s.started_at).min();
        let end = of.iter().filter_map(|s| s.finished_at).max();
        if let (Some(a), Some(b)) = (start, end) {
            let secs = (b - a).num_milliseconds().max(1) as f64 / 1000.0;
            writeln!(out, "  {stage:<10} {secs:>8.1}s  {:>10.0} records/s", records / secs)?;
        }
    }
    let (copy_secs, rows) = raw_copy_baseline(&pool, &dir, date).await?;
    let raw_rate = rows as f64 / copy_secs;
    writeln!(
        out,
        "baseline: raw COPY of the {rows} staged rows into a table with the same indexes: {copy_secs:.1}s, {raw_rate:.0} rows/s"
    )?;
    writeln!(out, "pipeline / raw COPY: {:.3}", (records / total.as_secs_f64()) / raw_rate)?;
    writeln!(
        out,
        "expected valid records {}; peak worker memory {} MiB",
        m.total().valid,
        peak_memory_kib().unwrap_or(0) / 1024
    )?;
    let shown: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    writeln!(out, "database: {}", shown.join(" "))?;
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(if status == RunState::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Dumps the day's staging rows to a file, then times a plain COPY of that
/// file into a fresh table with staging's indexes.
async fn raw_copy_baseline(pool: &sqlx::PgPool, dir: &Path, date: NaiveDate) -> Result<(f64, u64)> {
    use futures_util::StreamExt;
    let path = dir.join("baseline.copy");
    let mut conn = pool.acquire().await?;
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
    let sql = format!("COPY (SELECT * FROM etl.staging WHERE business_date = '{date}') TO STDOUT");
    let mut stream = conn.copy_out_raw(&sql).await?;
    while let Some(chunk) = stream.next().await {
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?).await?;
    }
    drop(stream);
    tokio::io::AsyncWriteExt::flush(&mut file).await?;
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS etl.bench_copy; CREATE TABLE etl.bench_copy (LIKE etl.staging INCLUDING INDEXES)",
    )
    .execute(&mut *conn)
    .await?;
    let t = Instant::now();
    let mut copy = conn.copy_in_raw("COPY etl.bench_copy FROM STDIN").await?;
    let mut f = tokio::fs::File::open(&path).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = tokio::io::AsyncReadExt::read(&mut f, &mut buf).await?;
        if n == 0 {
            break;
        }
        copy.send(&buf[..n]).await?;
    }
    let rows = copy.finish().await?;
    let secs = t.elapsed().as_secs_f64();
    sqlx::raw_sql("DROP TABLE etl.bench_copy").execute(&mut *conn).await?;
    let _ = std::fs::remove_file(&path);
    Ok((secs, rows))
}
