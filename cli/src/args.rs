//! The command line, as clap types. No behaviour here.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Durable workflows on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "wf", version, about = "Durable workflows on PostgreSQL", propagate_version = true)]
pub struct Cli {
    /// PostgreSQL URL; without it, wf uses (and if needed starts) its own embedded cluster.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema.
    Migrate {
        /// Upgrade the engine's schema even while workers are live (they
        /// would keep running the statements of the schema they started on).
        #[arg(long)]
        force: bool,
    },
    /// Run a worker until SIGINT/SIGTERM.
    Worker(WorkerArgs),
    /// Start, inspect and operate one run.
    #[command(subcommand)]
    Run(RunCommand),
    /// List runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Operate one step of a run.
    #[command(subcommand)]
    Step(StepCommand),
    /// Registered workflows.
    #[command(subcommand)]
    Workflows(ListCommand),
    /// Known workers.
    #[command(subcommand)]
    Workers(ListCommand),
    /// Manage the embedded default database.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run the main job end to end on the embedded (or given) database.
    Demo(DemoArgs),
    /// Upstream feed files.
    #[command(subcommand, alias = "feeds")]
    Feed(FeedCommand),
    /// The ETL's audit lineage.
    #[command(subcommand)]
    Audit(crate::etl::AuditCommand),
    /// Benchmarks, printed as a table next to a baseline measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `wf feed ...`.
#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Parse a file and print what was read: statements, transactions, totals, findings, rejects.
    Inspect {
        /// The file.
        file: std::path::PathBuf,
        /// auto, mt940, camt, nacha, bai2 or csv.
        #[arg(long, default_value = "auto")]
        format: String,
        /// CSV feed profile (TOML), required for CSV files.
        #[arg(long)]
        profile: Option<std::path::PathBuf>,
    },
    /// Write a seeded business day of feeds in all five formats, with manifest.json.
    Generate(crate::etl::GenerateArgs),
}

/// `wf bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The durable path: throughput, scale, pickup latency, recovery.
    Engine(crate::bench::EngineArgs),
    /// The daily transactions ETL on a generated day, against a raw COPY baseline.
    Etl(crate::etl::BenchEtlArgs),
}

/// `wf worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Steps running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Queues to claim from (repeatable).
    #[arg(long = "queue", default_value = "default")]
    pub queues: Vec<String>,
    /// Lease length (for example 15s).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_ttl: std::time::Duration,
    /// How long running steps may take to finish on shutdown.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: std::time::Duration,
    /// Longest wait between polls when no wake-up arrives.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: std::time::Duration,
    /// Batch completion calls in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_flushes: u32,
    /// Claim calls in flight at once (each for up to concurrency / max-claims steps).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub max_claims: u32,
    /// How long a completion call or a claim may wait to batch more steps (0s: never wait).
    #[arg(long, default_value = "2ms", value_parser = humantime::parse_duration)]
    pub batch_linger: std::time::Duration,
    /// Send NOTIFY wake-ups (off: other workers find new work by polling only).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub notify: String,
}

/// `wf run ...`.
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Start a run of a registered workflow.
    Start(StartArgs),
    /// The run and each of its steps.
    Show {
        /// Run id.
        run: String,
    },
    /// Every event of every step, oldest first.
    History {
        /// Run id.
        run: String,
        /// Only this step.
        #[arg(long)]
        step: Option<String>,
    },
    /// Put failed, cancelled and upstream-failed steps back to work.
    Resume {
        /// Run id.
        run: String,
        /// Why (recorded in the history).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel every unfinished step.
    Cancel {
        /// Run id.
        run: String,
        /// Why (recorded in the history).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `wf run start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Workflow name.
    pub workflow: String,
    /// Parameter `key=value` (repeatable).
    #[arg(long = "param", short = 'p')]
    pub params: Vec<String>,
    /// Unique per workflow: starting again with the same key returns the existing run.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Correlation id (default: the run id).
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Deadline (RFC 3339, for example 2026-11-25T06:00:00Z).
    #[arg(long)]
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
    /// Wait for the run to end; exit 0 only if it succeeded (3 failed, 4 cancelled).
    #[arg(long)]
    pub wait: bool,
}

/// `wf runs ...`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List(ListRunsArgs),
}

/// `wf runs list`.
#[derive(Debug, Args)]
pub struct ListRunsArgs {
    /// Only runs with this status (running, succeeded, failed, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    /// Only runs of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs with this correlation id.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Only runs created since (RFC 3339 time, or a duration ago such as 2h).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
}

/// `wf step ...`.
#[derive(Debug, Subcommand)]
pub enum StepCommand {
    /// Put one failed or cancelled step back to ready.
    Retry {
        /// Run id.
        run: String,
        /// Step name.
        step: String,
        /// Why (recorded in the history).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Mark a step skipped (done for its dependents): its data is not loaded.
    Skip {
        /// Run id.
        run: String,
        /// Step name.
        step: String,
        /// Why (required; recorded in the history).
        #[arg(long, required = true)]
        reason: String,
    },
}

/// `wf workflows list`, `wf workers list`.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List them.
    List,
}

/// `wf db ...`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create (if needed) and start the embedded cluster.
    Start,
    /// Stop the embedded cluster.
    Stop,
    /// Whether it exists and runs.
    Status,
    /// Print its connection URL.
    Url,
}

/// `wf demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run the synthetic fan-out workflow instead of the daily transactions ETL.
    #[arg(long)]
    pub synthetic: bool,
    /// Work steps in the synthetic demo run.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=10_000), requires = "synthetic")]
    pub steps: u64,
    /// Records in the ETL demo's generated business day.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(5..=10_000_000), conflicts_with = "synthetic")]
    pub records: u64,
    /// In-process workers.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub workers: u32,
}
