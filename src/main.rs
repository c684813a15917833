//! The `wf` binary: the command line with the built-in workflows.

use std::process::ExitCode;

fn main() -> ExitCode {
    wf_cli::main(wf_cli::builtin_registry())
}
