//! A `wf` of your own: the built-in commands plus a two-step workflow,
//! `hello`, whose second step reads the first one's output.

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::process::ExitCode;
use workflow_core::{Params, Registry, Step, StepContext, StepError, StepOutcome, Workflow, WorkflowBuilder};
use workflow_core::{WorkflowError, async_trait};

/// Looks up (here: makes up) the weather of a city.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fetch {
    city: String,
}

#[typetag::serde(name = "hello.fetch")]
#[async_trait]
impl Step for Fetch {
    async fn run(&self, _ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let celsius = self.city.len() as i64 * 3 % 35;
        Ok(StepOutcome::output(json!({ "city": self.city, "celsius": celsius })))
    }
}

/// Turns the upstream output into a sentence.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {}

#[typetag::serde(name = "hello.report")]
#[async_trait]
impl Step for Report {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let w = ctx.upstream("fetch")?;
        let line = format!("It is {} °C in {}.", w["celsius"], w["city"].as_str().unwrap_or("?"));
        Ok(StepOutcome::output(json!({ "report": line })))
    }
}

fn build(p: &Params) -> Result<Workflow, WorkflowError> {
    p.only(&["city"])?;
    let city = p.get("city").unwrap_or("Lisbon").to_owned();
    let mut wf = WorkflowBuilder::new("hello", 1);
    wf.step("fetch", Fetch { city });
    wf.step("report", Report {}).after(["fetch"]);
    wf.build()
}

fn main() -> ExitCode {
    let mine = Registry::new().step_types(["hello.fetch", "hello.report"]).workflow(
        "hello",
        "fetch a city's weather, then report it",
        &[("city", "the city (default Lisbon)")],
        build,
    );
    wf_cli::main(wf_cli::builtin_registry().merge(mine))
}
