//! What each command does: resolve the database, call the store, render.

use crate::args::{
    BenchCommand, Cli, Command, DbCommand, FeedCommand, ListCommand, ListRunsArgs, LogFormat, RunCommand, RunsCommand,
    StartArgs, StepCommand, WorkerArgs,
};
use crate::connect;
use crate::embedded::{Embedded, Status};
use crate::render;
use anyhow::{Context, Result, anyhow, bail};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workflow_core::store::{OperatorAction, RunInsert, RunsFilter};
use workflow_core::{Params, Registry, Resources, RunId, RunState, Store, StoreError, Worker, WorkerConfig};
use workflow_pg::PgStore;

/// Sets up tracing on stderr: `RUST_LOG` wins; else info for long-running
/// commands and warnings only for one-shot ones.
pub fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Command::Worker(_) => "info",
        // The demo shows progress and a summary; retried failures are part of the show.
        Command::Demo(_) => "error",
        // Bulk ETL statements routinely exceed sqlx's slow-statement threshold.
        Command::Bench(BenchCommand::Etl(_)) | Command::Audit(_) => "error",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The OS user, recorded with runs and operator actions.
pub fn os_user() -> String {
    whoami::username()
}

/// Runs one parsed command.
pub async fn run(cli: Cli, registry: Registry) -> Result<ExitCode> {
    registry.validate()?;
    let url = cli.database_url.clone();
    let json = cli.json;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Migrate { force } => {
            let url = connect::resolve(url.as_deref()).await?;
            let pool = connect::one_shot(&url).await?;
            if !force {
                refuse_upgrade_under_live_workers(&pool).await?;
            }
            for m in crate::migrators() {
                m.run(&pool).await.context("migration failed")?;
            }
            writeln!(out, "migrated {}", connect::redact(&url))?;
        }
        Command::Worker(args) => return worker(url.as_deref(), args, registry).await,
        Command::Run(RunCommand::Start(args)) => return start(url.as_deref(), args, &registry, json, &mut out).await,
        Command::Run(RunCommand::Show { run }) => {
            let (store, id) = (store(url.as_deref()).await?, parse_run(&run)?);
            let info = store.run_get(id).await?;
            let steps = store.steps_list(id).await?;
            let workers = store.workers_list().await?;
            render::run_show(&mut out, &info, &steps, &workers, chrono::Utc::now(), json)?;
        }
        Command::Run(RunCommand::History { run, step }) => {
            let (store, id) = (store(url.as_deref()).await?, parse_run(&run)?);
            store.run_get(id).await?;
            render::history(&mut out, &store.events_list(id, step).await?, json)?;
        }
        Command::Run(RunCommand::Resume { run, reason }) => {
            let (store, id) = (store(url.as_deref()).await?, parse_run(&run)?);
            let n = store.run_resume(action(id, None, reason)).await?;
            report(&mut out, json, id, "resumed", n)?;
        }
        Command::Run(RunCommand::Cancel { run, reason }) => {
            let (store, id) = (store(url.as_deref()).await?, parse_run(&run)?);
            let n = store.run_cancel(action(id, None, reason)).await?;
            report(&mut out, json, id, "cancelled", n)?;
        }
        Command::Step(StepCommand::Retry { run, step, reason }) => {
            let (store, id) = (store(url.as_deref()).await?, parse_run(&run)?);
            let n = store.step_retry(action(id, Some(step), reason)).await?;
            report(&mut out, json, id, "retried", n)?;
        }
        Command::Step(StepCommand::Skip { run, step, reason }) => {
            let (store, id) = (store(url.as_deref()).await?, parse_run(&run)?);
            let n = store.step_skip(action(id, Some(step), Some(reason))).await?;
            report(&mut out, json, id, "skipped", n)?;
        }
        Command::Runs(RunsCommand::List(args)) => {
            let filter = runs_filter(args)?;
            let store = store(url.as_deref()).await?;
            render::runs(&mut out, &store.runs_list(filter).await?, json)?;
        }
        Command::Workflows(ListCommand::List) => render::workflows(&mut out, registry.workflows(), json)?,
        Command::Workers(ListCommand::List) => {
            let store = store(url.as_deref()).await?;
            render::workers(&mut out, &store.workers_list().await?, chrono::Utc::now(), json)?;
        }
        Command::Db(cmd) => db(cmd, json, &mut out).await?,
        Command::Demo(args) => return crate::demo::run(url.as_deref(), args, registry, &mut out).await,
        Command::Feed(FeedCommand::Inspect { file, format, profile }) => {
            feed_inspect(&file, &format, profile, json, &mut out)?
        }
        Command::Feed(FeedCommand::Generate(args)) => crate::etl::feeds_generate(args, json, &mut out)?,
        Command::Audit(cmd) => return crate::etl::audit(url.as_deref(), cmd, json, &mut out).await,
        Command::Bench(BenchCommand::Etl(args)) => {
            return crate::etl::bench(url.as_deref(), args, registry, &mut out).await;
        }
        Command::Bench(BenchCommand::Engine(args)) => {
            let url = connect::resolve(url.as_deref()).await?;
            crate::bench::engine(&url, args, json, &mut out).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn action(run: RunId, step: Option<String>, reason: Option<String>) -> OperatorAction {
    OperatorAction { run, step, actor: os_user(), reason }
}

fn report(out: &mut dyn Write, json: bool, run: RunId, what: &str, n: usize) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::json!({ "run": run, "action": what, "steps": n }))?;
    } else {
        writeln!(out, "{what}: {n} step(s) of run {run}")?;
    }
    Ok(())
}

fn parse_run(s: &str) -> Result<RunId> {
    s.trim().parse().map_err(|_| anyhow!("bad run id {s:?}: expected a UUID"))
}

/// A store for a one-shot command, refusing an unmigrated or newer schema.
pub async fn store(url: Option<&str>) -> Result<PgStore> {
    let url = connect::resolve(url).await?;
    let store = PgStore::new(connect::one_shot(&url).await?);
    store.schema_check().await?;
    Ok(store)
}

fn runs_filter(a: ListRunsArgs) -> Result<RunsFilter> {
    let status = a
        .status
        .map(|s| {
            RunState::parse(&s)
                .ok_or_else(|| anyhow!("bad --status {s:?}: expected running, succeeded, failed or cancelled"))
        })
        .transpose()?;
    let since = a.since.map(|s| parse_since(&s, chrono::Utc::now())).transpose()?;
    Ok(RunsFilter { status, workflow: a.workflow, correlation_id: a.correlation_id, since, limit: a.limit })
}

/// An RFC 3339 time, or a duration ago (`2h`, `30m`).
pub fn parse_since(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = humantime::parse_duration(s)
        .map_err(|_| anyhow!("bad --since {s:?}: expected an RFC 3339 time or a duration such as 2h"))?;
    Ok(now - chrono::Duration::from_std(d)?)
}

/// Builds the run's plan from the registry; nothing is written on error.
pub fn plan(registry: &Registry, args: &StartArgs) -> Result<RunInsert> {
    let entry = registry.workflow_entry(&args.workflow).ok_or_else(|| {
        let known: Vec<&str> = registry.workflows().map(|w| w.name.as_str()).collect();
        anyhow!("unknown workflow {:?} (registered: {})", args.workflow, known.join(", "))
    })?;
    let params = Params::parse(&args.params)?;
    let wf = (entry.build)(&params)?;
    let mut insert = RunInsert::from_workflow(&wf, params, os_user())?;
    insert.idempotency_key = args.idempotency_key.clone();
    insert.correlation_id = args.correlation_id.clone();
    insert.deadline = args.deadline;
    Ok(insert)
}

async fn start(
    url: Option<&str>,
    args: StartArgs,
    registry: &Registry,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let insert = plan(registry, &args)?;
    let store = store(url).await?;
    let r = store.run_insert(insert).await?;
    if json {
        writeln!(out, "{}", serde_json::json!({ "id": r.id, "created": r.created }))?;
    } else {
        writeln!(out, "{}", r.id)?;
    }
    out.flush()?;
    if !r.created {
        tracing::warn!(run = %r.id, "a run with this idempotency key exists; returning it");
    }
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match wait_for(&store, r.id).await? {
        RunState::Succeeded => ExitCode::SUCCESS,
        RunState::Failed => ExitCode::from(crate::EXIT_RUN_FAILED),
        RunState::Cancelled => ExitCode::from(crate::EXIT_RUN_CANCELLED),
        RunState::Running => unreachable!("wait_for returns an ended state"),
    })
}

/// Polls until the run ends, waiting out an unreachable database.
pub async fn wait_for<S: Store>(store: &S, id: RunId) -> Result<RunState> {
    let mut delay = Duration::from_millis(100);
    loop {
        match store.run_get(id).await {
            Ok(info) if info.status != RunState::Running => return Ok(info.status),
            Ok(_) => delay = Duration::from_millis(250),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "database unreachable while waiting; retrying");
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(delay).await;
    }
}

async fn worker(url: Option<&str>, args: WorkerArgs, registry: Registry) -> Result<ExitCode> {
    let url = connect::resolve(url).await?;
    // Below the lease ttl, so a frozen worker's open transaction dies before
    // another worker needs its rows.
    let idle_tx = args.lease_ttl * 2 / 3;
    let config = WorkerConfig {
        queues: args.queues,
        concurrency: args.concurrency as usize,
        lease_ttl: args.lease_ttl,
        poll_interval: args.poll_interval,
        shutdown_grace: args.shutdown_grace,
        max_flushes: args.max_flushes as usize,
        max_claims: args.max_claims as usize,
        batch_linger: args.batch_linger,
        host: whoami::fallible::hostname().unwrap_or_else(|_| "unknown".into()),
        ..WorkerConfig::default()
    };
    let control = connect::control(&url, &config)?;
    let work = connect::lazy(&url, args.concurrency + 2, Some(idle_tx))?;
    let mut store = PgStore::new(control);
    if args.notify == "off" {
        store = store.without_notify();
    }
    let store = Arc::new(store);
    let listener = store.start_listener();
    let mut resources = Resources::new();
    resources.insert(work);
    let worker = Worker::new(store, registry, config, resources)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    let stats = worker.run(shutdown).await.map_err(|e| match e {
        workflow_core::WorkerError::Store(StoreError::Schema(m)) => anyhow!(m),
        e => e.into(),
    })?;
    listener.abort();
    tracing::info!(?stats, "worker exited");
    Ok(ExitCode::SUCCESS)
}

/// Cancels `token` on SIGINT or SIGTERM; a second signal exits at once.
pub async fn signals(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("signal received: finishing running steps, then releasing the rest");
    token.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::warn!("second signal: exiting now; unfinished leases will expire and be rescued");
    std::process::exit(130);
}

fn feed_inspect(
    file: &std::path::Path,
    format: &str,
    profile: Option<std::path::PathBuf>,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    use pipelines::feeds;
    let format = match format {
        "auto" => None,
        f => Some(f.parse::<feeds::Format>().map_err(|e| anyhow!("{e}"))?),
    };
    let profile = profile.map(|p| feeds::CsvProfile::load(&p)).transpose()?;
    let report = feeds::inspect(file, format, profile.as_ref())?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(())
}

async fn db(cmd: DbCommand, json: bool, out: &mut dyn Write) -> Result<()> {
    let e = Embedded::locate()?;
    match cmd {
        DbCommand::Start => {
            let url = e.ensure_started().await?;
            writeln!(out, "running: {url}")?;
        }
        DbCommand::Stop => {
            let was = e.stop()?;
            writeln!(out, "{}", if was { "stopped" } else { "not running" })?;
        }
        DbCommand::Status => {
            let s = e.status()?;
            let word = match s {
                Status::Absent => "absent",
                Status::Stopped => "stopped",
                Status::Running => "running",
            };
            if json {
                writeln!(out, "{}", serde_json::json!({ "status": word, "dir": e.base(), "url": e.url() }))?;
            } else {
                writeln!(out, "{word} ({})", e.base().display())?;
            }
        }
        DbCommand::Url => {
            if e.status()? != Status::Running {
                bail!("the embedded database is not running; start it with `wf db start`");
            }
            writeln!(out, "{}", e.url())?;
        }
    }
    Ok(())
}

/// A worker checks the schema version when it starts, not while it runs:
/// upgrading the engine's schema under a live worker leaves it running the
/// statements of the old one (migration 3, for one, moved the ready and
/// running steps into tables of their own, which an older worker would not
/// keep). Refuses unless no worker was seen in the last minute.
async fn refuse_upgrade_under_live_workers(pool: &sqlx::PgPool) -> Result<()> {
    let applied: Option<i64> =
        match sqlx::query_scalar("SELECT max(version) FROM wf._migrations WHERE success").fetch_one(pool).await {
            Ok(v) => v,
            // No wf schema yet: nothing can be running on it.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    let latest = workflow_pg::schema::latest_version();
    let Some(from) = applied.filter(|&v| v < latest) else { return Ok(()) };
    let live: Vec<(String, i32)> = sqlx::query_as(
        "SELECT host, pid FROM wf.workers
         WHERE stopped_at IS NULL AND last_seen_at > now() - interval '60 seconds' ORDER BY host, pid",
    )
    .fetch_all(pool)
    .await?;
    if live.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = live.iter().map(|(h, p)| format!("{h}:{p}")).collect();
    bail!(
        "{} live worker(s) ({}): stop them before upgrading the wf schema from version {from} to {latest} \
         (or pass --force)",
        live.len(),
        list.join(", ")
    )
}
