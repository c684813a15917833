//! `wf demo`, the main job: generate a small business day of feeds and run
//! `daily_transactions` on it with in-process workers, then print the run's
//! step table, the daily report and the commands to explore it further.
//! `--synthetic` runs the synthetic fan-out instead, showing progress.

use crate::args::DemoArgs;
use crate::commands::{os_user, signals};
use crate::{connect, render};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workflow_core::store::RunInsert;
use workflow_core::{Params, Registry, Resources, RunState, Store, Worker, WorkerConfig};
use workflow_pg::PgStore;

/// The demo's parameters: a fan-out with seeded retryable failures (seed 1
/// fails at least one first attempt; a test checks it).
pub fn demo_params(steps: u64) -> Params {
    Params::parse([
        format!("steps={steps}"),
        "shape=fanout".into(),
        "sleep_ms=120".into(),
        "fail_rate=0.15".into(),
        "max_attempts=5".into(),
        "seed=1".into(),
        "effect=true".into(),
    ])
    .expect("valid demo parameters")
}

/// Runs the demo; each invocation is a new run.
pub async fn run(url: Option<&str>, args: DemoArgs, registry: Registry, out: &mut dyn Write) -> Result<ExitCode> {
    if !args.synthetic {
        return etl(url, args, registry, out).await;
    }
    let url = connect::resolve(url).await?;
    let pool = connect::one_shot(&url).await?;
    for m in crate::migrators() {
        m.run(&pool).await.context("migration failed")?;
    }
    let store = PgStore::new(pool.clone());
    let entry = registry.workflow_entry("synthetic").context("the synthetic workflow is not registered")?;
    let params = demo_params(args.steps);
    let wf = (entry.build)(&params)?;
    let mut insert = RunInsert::from_workflow(&wf, params, os_user())?;
    insert.correlation_id = Some(format!("demo-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
    let run = store.run_insert(insert).await?.id;
    writeln!(out, "started run {run} (synthetic fan-out of {} steps, with injected retryable failures)", args.steps)?;

    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let config = WorkerConfig { concurrency: 4, host: "demo".into(), ..WorkerConfig::default() };
        let control = PgStore::new(connect::control(&url, &config)?);
        control.start_listener();
        let mut res = Resources::new();
        res.insert(connect::lazy(&url, 6, Some(Duration::from_secs(10)))?);
        let w = Worker::new(Arc::new(control), registry.clone(), config, res)?;
        workers.push(tokio::spawn(w.run(shutdown.clone())));
    }

    let bar = ProgressBar::new(1);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps {msg}")?);
    let status = loop {
        let info = store.run_get(run).await?;
        let total: i64 = info.step_counts.values().sum();
        let ended: i64 = ["succeeded", "skipped", "failed", "upstream_failed", "cancelled"]
            .iter()
            .map(|s| info.step_counts.get(*s).copied().unwrap_or(0))
            .sum();
        bar.set_length(total as u64);
        bar.set_position(ended as u64);
        let running = info.step_counts.get("running").copied().unwrap_or(0);
        bar.set_message(format!("({running} running)"));
        if info.status != RunState::Running || shutdown.is_cancelled() {
            break info.status;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    };
    bar.finish_and_clear();
    shutdown.cancel();
    for w in workers {
        w.await.context("worker task")??;
    }

    let info = store.run_get(run).await?;
    let steps = store.steps_list(run).await?;
    render::run_show(out, &info, &steps, &[], chrono::Utc::now(), false)?;
    let retried = store.events_list(run, None).await?.iter().filter(|e| e.event == "failed").count();
    writeln!(out, "{retried} attempt(s) failed and were retried.\n")?;
    writeln!(out, "Explore it:")?;
    writeln!(out, "  wf run show {run}")?;
    writeln!(out, "  wf run history {run}")?;
    writeln!(out, "  wf run history {run} --step split")?;
    writeln!(out, "  psql \"$(wf db url)\" -c \"SELECT * FROM wf.run_status WHERE id = '{run}'\"")?;
    Ok(if status == RunState::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The ETL demo: a generated business day through `daily_transactions`.
async fn etl(url: Option<&str>, args: DemoArgs, registry: Registry, out: &mut dyn Write) -> Result<ExitCode> {
    let url = connect::resolve(url).await?;
    let date = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%f");
    let landing = std::env::temp_dir().join(format!("wf-demo-{stamp}-{}", std::process::id())).join(date.to_string());
    let spec = pipelines::generate::GenSpec {
        date,
        records: args.records,
        malformed_rate: 0.02,
        duplicate_rate: 0.02,
        seed: 1,
    };
    let manifest = pipelines::generate::generate(&spec, &landing)?;
    let t = manifest.total();
    writeln!(
        out,
        "generated {date} in {}: {} records ({} valid, {} unparseable, {} invalid, {} duplicates) in 5 feeds",
        landing.display(),
        t.records,
        t.valid,
        t.unparseable,
        t.invalid,
        t.duplicates
    )?;
    let (store, run, status) = crate::etl::run_day(&url, &registry, date, &landing, args.workers).await?;
    let info = store.run_get(run).await?;
    let steps = store.steps_list(run).await?;
    render::run_show(out, &info, &steps, &[], chrono::Utc::now(), false)?;
    let pool = connect::one_shot(&url).await?;
    crate::etl::print_report(&pool, run, out).await?;
    writeln!(out, "\nExplore it:")?;
    writeln!(out, "  wf run show {run}")?;
    writeln!(out, "  wf run history {run} --step report")?;
    writeln!(out, "  wf audit verify --date {date}")?;
    writeln!(out, "  psql \"$(wf db url)\" -c \"SELECT * FROM etl.daily_report WHERE run_id = '{run}'\"")?;
    Ok(if status == RunState::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
