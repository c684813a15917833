//! The `wf` command line, as a library, so users can build their own `wf`
//! with their own workflows and step types registered:
//!
//! ```no_run
//! use std::process::ExitCode;
//! fn main() -> ExitCode {
//!     let registry = wf_cli::builtin_registry(); // .merge(my_registry())
//!     wf_cli::main(registry)
//! }
//! ```
//!
//! * [`args`]: the clap definition.      * [`commands`]: what each command does.
//! * [`render`]: tables and JSON.         * [`embedded`]: the embedded default database.
//! * [`connect`]: URLs and pools.         * [`synthetic`]: the built-in `synthetic` workflow.
//! * [`demo`]: `wf demo`, the main job.        * [`bench`]: `wf bench engine`.
//! * [`etl`]: `wf feeds generate`, `wf audit`, `wf bench etl`.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error; `run start --wait`
//! exits 3 when the run failed and 4 when it was cancelled.

pub mod args;
pub mod bench;
pub mod commands;
pub mod connect;
pub mod demo;
pub mod embedded;
pub mod etl;
pub mod render;
pub mod synthetic;

use clap::Parser;
use std::process::ExitCode;
use workflow_core::Registry;

/// Exit code of `run start --wait` when the run failed.
pub const EXIT_RUN_FAILED: u8 = 3;
/// Exit code of `run start --wait` when the run was cancelled.
pub const EXIT_RUN_CANCELLED: u8 = 4;

/// The workflows and step types built into `wf`: `synthetic` and the ETL.
pub fn builtin_registry() -> Registry {
    Registry::new()
        .step_types(synthetic::STEP_TYPES.iter().copied())
        .step_type("bench.probe")
        .workflow(
            "synthetic",
            "chain or fan-out of no-op or sleeping steps, with seeded retryable failures",
            synthetic::PARAMS,
            synthetic::build,
        )
        .merge(pipelines::registry())
}

/// Every migration set `wf migrate` applies, in order: the engine's, then
/// the built-in workflows' (each with its own history table).
pub fn migrators() -> Vec<sqlx::migrate::Migrator> {
    let mut synthetic = sqlx::migrate!("./migrations");
    synthetic.create_schema("wf_synthetic");
    synthetic.dangerous_set_table_name("wf_synthetic._migrations");
    vec![workflow_pg::migrator(), synthetic, pipelines::migrator()]
}

/// Parses the command line, runs the command, and maps the outcome to an
/// exit code, printing any error as one line on stderr.
pub fn main(registry: Registry) -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    commands::init_logging(&cli);
    match runtime.block_on(commands::run(cli, registry)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
