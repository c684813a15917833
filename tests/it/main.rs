//! Cross-crate integration tests: in-process workers and real `wf`
//! processes against a real PostgreSQL (one fresh database per test).

mod bench;
mod cli;
mod embedded;
mod etl;
mod support;
mod workers;
