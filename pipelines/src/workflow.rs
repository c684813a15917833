//! The `daily_transactions` workflow: its parameters, and the plan of one
//! independent branch per feed (land -> parse -> transform -> validate ->
//! load) plus a `report` step that runs once every branch has ended.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use workflow_core::{Params, RetryPolicy, Trigger, Workflow, WorkflowBuilder, WorkflowError};

use crate::config::{FeedSpec, FeedsConfig, Window};
use crate::land::Land;
use crate::load::Load;
use crate::parse::Parse;
use crate::report::Report;
use crate::transform::{Transform, Validate};

/// The parameter names and meanings, for `wf workflows list`.
pub const PARAMS: &[(&str, &str)] = &[
    ("date", "business date, YYYY-MM-DD (required)"),
    ("landing", "landing directory (default ./landing/<date>)"),
    ("config", "feeds config TOML (default <landing>/feeds.toml)"),
];

/// Every step type of the ETL, by its persisted name.
pub const STEP_TYPES: &[&str] =
    &["etl.land", "etl.parse", "etl.parse_chunk", "etl.transform", "etl.validate", "etl.load", "etl.report"];

/// Version stamped on canonical rows and lineage; bump when the mapping
/// from staging to canonical rows changes.
pub const TRANSFORM_VERSION: i32 = 1;

/// What every step of one feed's branch knows: the business date, the
/// feed and the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Business date.
    pub date: NaiveDate,
    /// The feed.
    pub feed: FeedSpec,
    /// Dates accepted by validation.
    pub window: Window,
    /// Record ordinals per parse chunk.
    #[serde(default = "crate::config::default_chunk_records")]
    pub chunk_records: u64,
}

impl Job {
    /// The name of this feed's step `stage` (`<feed>.<stage>`).
    pub fn step(&self, stage: &str) -> String {
        format!("{}.{stage}", self.feed.name)
    }
}

fn param(e: impl std::fmt::Display) -> WorkflowError {
    WorkflowError::Param(e.to_string())
}

/// Builds the workflow from its parameters, reading the feeds config.
pub fn build(p: &Params) -> Result<Workflow, WorkflowError> {
    p.only(&PARAMS.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
    let raw: String = p.require("date")?;
    let date = NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
        .map_err(|_| param(format!("bad parameter date={raw:?}: expected YYYY-MM-DD")))?;
    let landing = PathBuf::from(p.get("landing").map(str::to_owned).unwrap_or_else(|| format!("./landing/{date}")));
    let landing = std::path::absolute(&landing).map_err(param)?;
    let config = p.get("config").map(PathBuf::from).unwrap_or_else(|| landing.join("feeds.toml"));
    let config = FeedsConfig::load(&config).map_err(param)?;

    let retry = RetryPolicy::attempts(3);
    let mut wf = WorkflowBuilder::new("daily_transactions", 1);
    let mut loads = Vec::new();
    for feed in config.feeds {
        let job = Job { date, feed, window: config.window, chunk_records: config.chunk_records };
        let landing = landing.display().to_string();
        wf.step(job.step("land"), Land { job: job.clone(), landing }).retry(retry);
        wf.step(job.step("parse"), Parse { job: job.clone() }).after([job.step("land")]).retry(retry);
        wf.step(job.step("transform"), Transform { job: job.clone() }).after([job.step("parse")]).retry(retry);
        wf.step(job.step("validate"), Validate { job: job.clone() }).after([job.step("transform")]).retry(retry);
        wf.step(job.step("load"), Load { job: job.clone() }).after([job.step("validate")]).retry(retry);
        loads.push(job);
    }
    let feeds: Vec<String> = loads.iter().map(|j| j.feed.name.clone()).collect();
    let after: Vec<String> = loads.iter().map(|j| j.step("load")).collect();
    wf.step("report", Report { date, feeds }).after(after).trigger(Trigger::AllDone).retry(retry);
    wf.build()
}
