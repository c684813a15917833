//! The built-in `synthetic` workflow, for demos, benchmarks and fault tests:
//! a chain or a fan-out of steps that sleep, fail retryably at a seeded
//! rate, and (with `effect=true`) write one row per success into
//! `wf_synthetic.effects` in the same transaction as their completion, so
//! duplicate effects can be counted by SQL.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::time::Duration;
use workflow_core::{
    ChildStep, Params, ResultExt, RetryPolicy, Step, StepContext, StepError, StepOutcome, Workflow, WorkflowBuilder,
    WorkflowError, async_trait,
};

/// Parameters of `synthetic`, validated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Sleep per attempt.
    pub sleep_ms: u64,
    /// Share of attempts that fail retryably, in [0, 1].
    pub fail_rate: f64,
    /// Seed of the failure draw.
    pub seed: u64,
    /// Write an effect row in the step's own transaction.
    pub effect: bool,
}

/// Largest `steps` accepted.
pub const MAX_STEPS: u64 = 5_000_000;

/// The parameter names and meanings, for `wf workflows list`.
pub const PARAMS: &[(&str, &str)] = &[
    ("steps", "number of work steps (default 10)"),
    ("shape", "chain | fanout (default fanout)"),
    ("sleep_ms", "sleep per attempt in ms (default 0)"),
    ("fail_rate", "share of attempts failing retryably, 0..1 (default 0)"),
    ("max_attempts", "attempts per step (default 5)"),
    ("seed", "seed of the failure draw (default 0)"),
    ("effect", "write one effect row per success (default true)"),
];

/// Builds the workflow from its parameters.
pub fn build(p: &Params) -> Result<Workflow, WorkflowError> {
    p.only(&PARAMS.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
    let n: u64 = p.get_or("steps", 10)?;
    if n == 0 || n > MAX_STEPS {
        return Err(WorkflowError::Param(format!("bad parameter steps={n}: must be 1..={MAX_STEPS}")));
    }
    let shape = p.get("shape").unwrap_or("fanout");
    let spec = Spec {
        sleep_ms: p.get_or("sleep_ms", 0)?,
        fail_rate: p.get_or("fail_rate", 0.0)?,
        seed: p.get_or("seed", 0)?,
        effect: p.get_or("effect", true)?,
    };
    if !(0.0..=1.0).contains(&spec.fail_rate) {
        return Err(WorkflowError::Param(format!("bad parameter fail_rate={}: must be in 0..=1", spec.fail_rate)));
    }
    if spec.sleep_ms > 3_600_000 {
        return Err(WorkflowError::Param("bad parameter sleep_ms: at most 3600000 (one hour)".into()));
    }
    let attempts: u32 = p.get_or("max_attempts", 5)?;
    if attempts == 0 || attempts > 1000 {
        return Err(WorkflowError::Param(format!("bad parameter max_attempts={attempts}: must be 1..=1000")));
    }
    let retry = RetryPolicy::attempts(attempts).with_backoff(Duration::from_millis(50), Duration::from_secs(2));
    let mut wf = WorkflowBuilder::new("synthetic", 1);
    match shape {
        "chain" => {
            for i in 0..n {
                let h = wf.step(format!("t{i:06}"), Task { index: i, spec, retry: Some(retry) });
                if i > 0 {
                    h.after([format!("t{:06}", i - 1)]);
                }
            }
        }
        "fanout" => {
            wf.step("split", Split { count: n, spec, retry: Some(retry) }).retry(retry);
            wf.step("join", Join {}).after(["split"]).retry(retry);
        }
        other => {
            return Err(WorkflowError::Param(format!("bad parameter shape={other:?}: expected chain or fanout")));
        }
    }
    wf.build()
}

/// Fans out into `count` tasks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    count: u64,
    spec: Spec,
    #[serde(default)]
    retry: Option<RetryPolicy>,
}

#[typetag::serde(name = "synthetic.split")]
#[async_trait]
impl Step for Split {
    async fn run(&self, _ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let children = (0..self.count)
            .map(|i| ChildStep {
                name: format!("t{i:06}"),
                step: Box::new(Task { index: i, spec: self.spec, retry: self.retry }),
            })
            .collect();
        Ok(StepOutcome::Expand(children))
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry.unwrap_or_default()
    }
}

/// One unit of synthetic work.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    index: u64,
    spec: Spec,
    #[serde(default)]
    retry: Option<RetryPolicy>,
}

/// A deterministic draw in [0, 1) from the seed, the task and the attempt.
fn draw(seed: u64, index: u64, attempt: u32) -> f64 {
    let h = Sha256::digest(format!("{seed}/{index}/{attempt}"));
    let x = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// True when attempt `attempt` of task `index` fails under `spec`.
pub fn fails(spec: &Spec, index: u64, attempt: u32) -> bool {
    spec.fail_rate > 0.0 && draw(spec.seed, index, attempt) < spec.fail_rate
}

#[typetag::serde(name = "synthetic.task")]
#[async_trait]
impl Step for Task {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        if self.spec.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.spec.sleep_ms)).await;
        }
        if fails(&self.spec, self.index, ctx.attempt) {
            return Err(StepError::Retryable(format!("injected failure (attempt {})", ctx.attempt)));
        }
        let output = json!({ "index": self.index });
        if !self.spec.effect {
            return Ok(StepOutcome::output(output));
        }
        let pool = ctx.resource::<PgPool>()?;
        let mut tx = pool.begin().await.retryable("begin")?;
        sqlx::query(
            "INSERT INTO wf_synthetic.effects (run_id, step, attempt, lease_token, input_hash) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(ctx.run_id.0)
        .bind(&ctx.step_name)
        .bind(ctx.attempt as i32)
        .bind(ctx.lease.token)
        .bind(&ctx.input_hash)
        .execute(&mut *tx)
        .await
        .retryable("write effect")?;
        let done = ctx.complete_in(&mut *tx, output).await?;
        tx.commit().await.retryable("commit")?;
        Ok(done)
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry.unwrap_or_default()
    }
}

/// Waits for every task of the fan-out and counts them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {}

#[typetag::serde(name = "synthetic.join")]
#[async_trait]
impl Step for Join {
    async fn run(&self, ctx: &StepContext) -> Result<StepOutcome, StepError> {
        let n = ctx.upstream_children("split").count();
        Ok(StepOutcome::output(json!({ "tasks": n })))
    }
}

/// The step type names of this workflow.
pub const STEP_TYPES: &[&str] = &["synthetic.split", "synthetic.task", "synthetic.join"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_params_are_refused_with_a_clear_message() {
        let bad = [
            ("steps=-3", "bad parameter steps"),
            ("steps=0", "must be 1.."),
            ("steps=99999999999", "must be 1.."),
            ("fail_rate=2", "fail_rate"),
            ("shape=star", "expected chain or fanout"),
            ("effect=maybe", "bad parameter effect"),
            ("colour=red", "unknown parameter"),
        ];
        for (p, msg) in bad {
            let err = build(&Params::parse([p]).unwrap()).unwrap_err().to_string();
            assert!(err.contains(msg), "{p}: {err}");
        }
    }

    #[test]
    fn shapes_have_the_expected_steps() {
        let chain = build(&Params::parse(["steps=4", "shape=chain"]).unwrap()).unwrap();
        assert_eq!(chain.steps.len(), 4);
        assert_eq!(chain.steps[3].after, ["t000002"]);
        let fan = build(&Params::parse(["steps=4"]).unwrap()).unwrap();
        assert_eq!(fan.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["split", "join"]);
    }

    #[test]
    fn failure_draw_is_deterministic_and_near_the_rate() {
        let spec = Spec { sleep_ms: 0, fail_rate: 0.3, seed: 7, effect: false };
        let n = (0..10_000).filter(|&i| fails(&spec, i, 1)).count();
        assert!((2_700..3_300).contains(&n), "{n}");
        assert_eq!(fails(&spec, 5, 1), fails(&spec, 5, 1));
    }
}
