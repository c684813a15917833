//! The registry: which step types a binary runs and which workflows it can
//! start, listed explicitly (typetag's own inventory has no public list and
//! only sees crates that are linked).

use crate::step::Step;
use crate::workflow::{Params, Workflow, WorkflowError};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Builds a workflow from parameters.
pub type BuildFn = Arc<dyn Fn(&Params) -> Result<Workflow, WorkflowError> + Send + Sync>;

/// A registered workflow.
#[derive(Clone)]
pub struct WorkflowEntry {
    /// Its name (`wf run start NAME`).
    pub name: String,
    /// One line for `wf workflows list`.
    pub description: String,
    /// Parameters it accepts, `name: meaning`, for `wf workflows list`.
    pub params: Vec<(String, String)>,
    /// The builder.
    pub build: BuildFn,
}

impl fmt::Debug for WorkflowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowEntry").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A registration mistake, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The same step type name was registered twice.
    #[error("step type {0:?} is registered twice")]
    DuplicateStepType(String),
    /// The same workflow name was registered twice.
    #[error("workflow {0:?} is registered twice")]
    DuplicateWorkflow(String),
    /// A registered name is not a typetag name of any linked `Step` impl.
    #[error("step type {0:?} is registered but no `#[typetag::serde(name = {0:?})]` impl of Step is linked")]
    UnknownStepType(String),
}

/// Step types and workflows of one binary.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    step_types: Vec<String>,
    workflows: BTreeMap<String, WorkflowEntry>,
    errors: Vec<RegistryError>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a step type by its frozen typetag name.
    pub fn step_type(mut self, name: &str) -> Self {
        if self.step_types.iter().any(|t| t == name) {
            self.errors.push(RegistryError::DuplicateStepType(name.to_owned()));
        } else {
            self.step_types.push(name.to_owned());
        }
        self
    }

    /// Registers several step types.
    pub fn step_types<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        names.into_iter().fold(self, Self::step_type)
    }

    /// Registers a workflow.
    pub fn workflow(
        mut self,
        name: &str,
        description: &str,
        params: &[(&str, &str)],
        build: impl Fn(&Params) -> Result<Workflow, WorkflowError> + Send + Sync + 'static,
    ) -> Self {
        let entry = WorkflowEntry {
            name: name.to_owned(),
            description: description.to_owned(),
            params: params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            build: Arc::new(build),
        };
        if self.workflows.insert(name.to_owned(), entry).is_some() {
            self.errors.push(RegistryError::DuplicateWorkflow(name.to_owned()));
        }
        self
    }

    /// Merges another registry (for example a library's) into this one.
    pub fn merge(mut self, other: Registry) -> Self {
        self.errors.extend(other.errors);
        self = other.step_types.iter().fold(self, |r, t| r.step_type(t));
        for (_, e) in other.workflows {
            if self.workflows.insert(e.name.clone(), e.clone()).is_some() {
                self.errors.push(RegistryError::DuplicateWorkflow(e.name));
            }
        }
        self
    }

    /// Checks the registrations: no duplicates, and every step type name is
    /// known to typetag. Call it at start-up.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if let Some(e) = self.errors.first() {
            return Err(e.clone());
        }
        for t in &self.step_types {
            // A known tag with missing fields fails differently from an
            // unknown tag; only the latter means a missing impl.
            let probe = serde_json::json!({ "type": t });
            if let Err(e) = serde_json::from_value::<Box<dyn Step>>(probe)
                && e.to_string().contains("unknown variant")
            {
                return Err(RegistryError::UnknownStepType(t.clone()));
            }
        }
        Ok(())
    }

    /// Registered step type names, in registration order.
    pub fn step_type_names(&self) -> &[String] {
        &self.step_types
    }

    /// True when `name` is registered.
    pub fn has_step_type(&self, name: &str) -> bool {
        self.step_types.iter().any(|t| t == name)
    }

    /// The workflow named `name`.
    pub fn workflow_entry(&self, name: &str) -> Option<&WorkflowEntry> {
        self.workflows.get(name)
    }

    /// Every workflow, by name.
    pub fn workflows(&self) -> impl Iterator<Item = &WorkflowEntry> {
        self.workflows.values()
    }
}
