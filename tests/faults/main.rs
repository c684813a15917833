//! Fault and crash suite: real `wf worker` processes against a PostgreSQL
//! cluster these tests own (they restart it and act as its superuser),
//! killed with SIGKILL, frozen with SIGSTOP, stopped with SIGTERM.
//!
//! Figures are appended to `target/reliability-figures.txt` (and printed by
//! `scripts/test`). `WF_SOAK_MINUTES=30` turns the chaos test into a soak.

mod bad_input;
mod chaos;
mod harness;
mod restart;
