//! Workflows: named, versioned DAGs of steps built in code from parameters,
//! validated before anything is written.

use crate::retry::RetryPolicy;
use crate::step::Step;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// When a step with dependencies may run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// After every upstream succeeded (or was skipped). If one fails, this
    /// step becomes upstream-failed.
    #[default]
    AllSucceeded,
    /// After every upstream ended, whatever the outcome: for reports and clean-up.
    AllDone,
}

impl Trigger {
    /// The name used in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllSucceeded => "all_succeeded",
            Self::AllDone => "all_done",
        }
    }
}

/// One step of a workflow's plan.
#[derive(Debug)]
pub struct StepSpec {
    /// Unique within the workflow.
    pub name: String,
    /// The definition.
    pub step: Box<dyn Step>,
    /// Names of upstream steps.
    pub after: Vec<String>,
    /// When it may run.
    pub trigger: Trigger,
    /// The queue (from the step unless overridden).
    pub queue: String,
    /// Attempts, backoff, timeout (from the step unless overridden).
    pub retry: RetryPolicy,
}

/// A validated DAG: steps in a topological order.
#[derive(Debug)]
pub struct Workflow {
    /// The registered name.
    pub name: String,
    /// Bumped when the shape changes; stored with each run.
    pub version: u32,
    /// Steps, every step after its upstreams.
    pub steps: Vec<StepSpec>,
}

/// Why a workflow definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// Two steps share a name.
    #[error("workflow {workflow}: duplicate step name {name:?}")]
    DuplicateStep {
        /// The workflow.
        workflow: String,
        /// The repeated name.
        name: String,
    },
    /// A step depends on a step that does not exist.
    #[error("workflow {workflow}: step {step:?} depends on unknown step {missing:?}")]
    UnknownDependency {
        /// The workflow.
        workflow: String,
        /// The step.
        step: String,
        /// The missing upstream.
        missing: String,
    },
    /// The dependencies form a cycle.
    #[error("workflow {workflow}: dependency cycle through {}", cycle.join(" -> "))]
    Cycle {
        /// The workflow.
        workflow: String,
        /// Steps on the cycle.
        cycle: Vec<String>,
    },
    /// A name is empty or contains `/` (reserved for fan-out children).
    #[error("workflow {workflow}: invalid step name {name:?} (must be non-empty, without '/')")]
    InvalidName {
        /// The workflow.
        workflow: String,
        /// The name.
        name: String,
    },
    /// The workflow has no steps.
    #[error("workflow {0}: no steps")]
    Empty(String),
    /// A parameter is missing or malformed.
    #[error("{0}")]
    Param(String),
}

/// Builds a [`Workflow`]; [`WorkflowBuilder::build`] validates it.
#[derive(Debug)]
pub struct WorkflowBuilder {
    name: String,
    version: u32,
    steps: Vec<StepSpec>,
}

/// Adjusts the step just added.
pub struct StepHandle<'a> {
    spec: &'a mut StepSpec,
}

impl StepHandle<'_> {
    /// Runs after these steps.
    pub fn after<S: AsRef<str>>(self, upstream: impl IntoIterator<Item = S>) -> Self {
        self.spec.after.extend(upstream.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// Sets the trigger rule.
    pub fn trigger(self, trigger: Trigger) -> Self {
        self.spec.trigger = trigger;
        self
    }

    /// Overrides the queue.
    pub fn queue(self, queue: impl Into<String>) -> Self {
        self.spec.queue = queue.into();
        self
    }

    /// Overrides the retry policy.
    pub fn retry(self, retry: RetryPolicy) -> Self {
        self.spec.retry = retry;
        self
    }
}

impl WorkflowBuilder {
    /// A new, empty workflow.
    pub fn new(name: impl Into<String>, version: u32) -> Self {
        Self { name: name.into(), version, steps: Vec::new() }
    }

    /// Adds a step; chain `.after([...])` etc. on the handle.
    pub fn step(&mut self, name: impl Into<String>, step: impl Step + 'static) -> StepHandle<'_> {
        self.step_boxed(name, Box::new(step))
    }

    /// Adds an already boxed step.
    pub fn step_boxed(&mut self, name: impl Into<String>, step: Box<dyn Step>) -> StepHandle<'_> {
        let spec = StepSpec {
            name: name.into(),
            queue: step.queue().to_owned(),
            retry: step.retry_policy(),
            step,
            after: Vec::new(),
            trigger: Trigger::default(),
        };
        self.steps.push(spec);
        StepHandle { spec: self.steps.last_mut().expect("just pushed") }
    }

    /// Validates names, dependencies and acyclicity, and orders the steps.
    pub fn build(self) -> Result<Workflow, WorkflowError> {
        let wf = self.name.clone();
        if self.steps.is_empty() {
            return Err(WorkflowError::Empty(wf));
        }
        let mut seen = HashSet::new();
        for s in &self.steps {
            if s.name.is_empty() || s.name.contains('/') {
                return Err(WorkflowError::InvalidName { workflow: wf, name: s.name.clone() });
            }
            if !seen.insert(s.name.as_str()) {
                return Err(WorkflowError::DuplicateStep { workflow: wf, name: s.name.clone() });
            }
        }
        for s in &self.steps {
            if let Some(missing) = s.after.iter().find(|d| !seen.contains(d.as_str())) {
                return Err(WorkflowError::UnknownDependency {
                    workflow: wf,
                    step: s.name.clone(),
                    missing: missing.clone(),
                });
            }
        }
        let order = topological_order(&self.steps).map_err(|cycle| WorkflowError::Cycle { workflow: wf, cycle })?;
        let mut slots: Vec<Option<StepSpec>> = self.steps.into_iter().map(Some).collect();
        let steps = order.into_iter().map(|i| slots[i].take().expect("each index once")).collect();
        Ok(Workflow { name: self.name, version: self.version, steps })
    }
}

/// Kahn's algorithm; on a cycle, returns the names of one cycle.
fn topological_order(steps: &[StepSpec]) -> Result<Vec<usize>, Vec<String>> {
    let index: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut indegree: Vec<usize> = vec![0; steps.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        let ups: HashSet<usize> = s.after.iter().map(|d| index[d.as_str()]).collect();
        indegree[i] = ups.len();
        for u in ups {
            dependents[u].push(i);
        }
    }
    let mut queue: Vec<usize> = (0..steps.len()).filter(|&i| indegree[i] == 0).rev().collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(i) = queue.pop() {
        order.push(i);
        for &d in dependents[i].iter().rev() {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push(d);
            }
        }
    }
    if order.len() == steps.len() {
        return Ok(order);
    }
    // Walk upstream from any step left over until a name repeats: that is a cycle.
    let mut at = (0..steps.len()).find(|&i| indegree[i] > 0).expect("a step is left");
    let mut path: Vec<usize> = Vec::new();
    loop {
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let mut cycle: Vec<String> = path[pos..].iter().rev().map(|&i| steps[i].name.clone()).collect();
            cycle.push(cycle[0].clone());
            return Err(cycle);
        }
        path.push(at);
        at = steps[at]
            .after
            .iter()
            .map(|d| index[d.as_str()])
            .find(|&u| indegree[u] > 0)
            .expect("a step left over has an upstream left over");
    }
}

/// Workflow parameters (`--param k=v`), with typed getters that fail with a
/// clear message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    /// Parses `k=v` pairs.
    pub fn parse<S: AsRef<str>>(pairs: impl IntoIterator<Item = S>) -> Result<Self, WorkflowError> {
        let mut map = BTreeMap::new();
        for p in pairs {
            let p = p.as_ref();
            let (k, v) = p
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| WorkflowError::Param(format!("bad parameter {p:?}: expected key=value")))?;
            if map.insert(k.trim().to_owned(), v.to_owned()).is_some() {
                return Err(WorkflowError::Param(format!("parameter {k:?} given twice")));
            }
        }
        Ok(Self(map))
    }

    /// The raw value, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parsed value, or `default` when absent; a clear error when malformed.
    pub fn get_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, WorkflowError>
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e| WorkflowError::Param(format!("bad parameter {key}={v:?}: {e}"))),
        }
    }

    /// A required parsed value.
    pub fn require<T: std::str::FromStr>(&self, key: &str) -> Result<T, WorkflowError>
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Err(WorkflowError::Param(format!("missing parameter {key:?}"))),
            Some(v) => v.trim().parse().map_err(|e| WorkflowError::Param(format!("bad parameter {key}={v:?}: {e}"))),
        }
    }

    /// Refuses parameters not in `known`, so a typo is not silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), WorkflowError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(WorkflowError::Param(format!("unknown parameter {k:?} (known: {})", known.join(", ")))),
        }
    }
}
