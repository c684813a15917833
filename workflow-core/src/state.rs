//! The step state machine: one pure function, [`transition`], is the spec.
//!
//! No I/O and no clock here. The PostgreSQL store implements the same
//! transitions in SQL (guarded by `WHERE status = ...`) and is tested against
//! this function with random event sequences.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The status of one step. JSON and SQL call it `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Waiting for upstream steps. Entered at run start (steps with
    /// dependencies) and on resume; left by `DepsMet` or `UpstreamFailed`.
    Blocked,
    /// Claimable from `available_at` on. Entered when dependencies are met,
    /// after a retryable failure (with backoff), a lost lease or a release.
    Ready,
    /// Held by exactly one worker under a lease (worker id + lease token).
    Running,
    /// Done. Dependents may run.
    Succeeded,
    /// Attempts exhausted or a permanent error. An operator may retry it.
    Failed,
    /// An upstream this step needs to have succeeded has failed. Reverts to
    /// blocked when the run is resumed.
    UpstreamFailed,
    /// Cancelled by an operator.
    Cancelled,
    /// Skipped by an operator, with a reason: counts as done for dependents.
    Skipped,
}

impl StepState {
    /// Every state, for exhaustive tests.
    pub const ALL: [StepState; 8] = [
        Self::Blocked,
        Self::Ready,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::UpstreamFailed,
        Self::Cancelled,
        Self::Skipped,
    ];

    /// The name used in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::UpstreamFailed => "upstream_failed",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// Parses the SQL/JSON name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True when nothing but an operator can move the step again.
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Succeeded | Self::Failed | Self::UpstreamFailed | Self::Cancelled | Self::Skipped => true,
            Self::Blocked | Self::Ready | Self::Running => false,
        }
    }

    /// True when the step counts as done for an all-succeeded dependent.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Something that happens to a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepEvent {
    /// The last pending upstream ended and this step may run.
    DepsMet,
    /// An upstream that had to succeed failed, was cancelled or is itself
    /// upstream-failed.
    UpstreamFailed,
    /// A worker took a lease on the step.
    Claimed,
    /// The step returned an output.
    Succeeded,
    /// The step returned child steps; its dependents now also wait for them.
    Expanded,
    /// The step returned an error; `retry` when it was retryable and attempts remain.
    Failed {
        /// Retryable error with attempts left.
        retry: bool,
    },
    /// The step ran past its timeout; `retry` when attempts remain.
    TimedOut {
        /// Attempts left.
        retry: bool,
    },
    /// The lease expired (the worker is gone); `retry` when attempts remain.
    LeaseExpired {
        /// Attempts left.
        retry: bool,
    },
    /// The worker gave the step back on graceful shutdown; the attempt is not counted.
    Released,
    /// Operator cancel (of the step's run).
    Cancel,
    /// Operator resume (of the run) or retry (of the step). `deps_met` says
    /// whether every upstream is currently done.
    Resume {
        /// Every upstream is done, so the step can be ready at once.
        deps_met: bool,
    },
    /// Operator skip, with a reason.
    Skip,
}

impl StepEvent {
    /// Every event, for exhaustive tests.
    pub const ALL: [StepEvent; 16] = [
        Self::DepsMet,
        Self::UpstreamFailed,
        Self::Claimed,
        Self::Succeeded,
        Self::Expanded,
        Self::Failed { retry: true },
        Self::Failed { retry: false },
        Self::TimedOut { retry: true },
        Self::TimedOut { retry: false },
        Self::LeaseExpired { retry: true },
        Self::LeaseExpired { retry: false },
        Self::Released,
        Self::Cancel,
        Self::Resume { deps_met: true },
        Self::Resume { deps_met: false },
        Self::Skip,
    ];

    /// The name recorded in the history (`wf.step_events.event`).
    pub fn name(self) -> &'static str {
        match self {
            Self::DepsMet => "deps_met",
            Self::UpstreamFailed => "upstream_failed",
            Self::Claimed => "claimed",
            Self::Succeeded => "succeeded",
            Self::Expanded => "expanded",
            Self::Failed { .. } => "failed",
            Self::TimedOut { .. } => "timed_out",
            Self::LeaseExpired { .. } => "lease_expired",
            Self::Released => "released",
            Self::Cancel => "cancelled",
            Self::Resume { .. } => "resumed",
            Self::Skip => "skipped",
        }
    }
}

/// A transition the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("step in state {from} cannot take event {event:?}")]
pub struct InvalidTransition {
    /// The state the step was in.
    pub from: StepState,
    /// The refused event.
    pub event: StepEvent,
}

/// The spec: the state a step moves to when `event` happens in state `from`.
pub fn transition(from: StepState, event: StepEvent) -> Result<StepState, InvalidTransition> {
    use {StepEvent as E, StepState as S};
    let invalid = Err(InvalidTransition { from, event });
    match (from, event) {
        (S::Blocked, E::DepsMet) => Ok(S::Ready),
        (S::Blocked, E::UpstreamFailed) => Ok(S::UpstreamFailed),
        (S::Ready, E::Claimed) => Ok(S::Running),
        (S::Running, E::Succeeded | E::Expanded) => Ok(S::Succeeded),
        (S::Running, E::Failed { retry: true } | E::TimedOut { retry: true } | E::LeaseExpired { retry: true }) => {
            Ok(S::Ready)
        }
        (S::Running, E::Failed { retry: false } | E::TimedOut { retry: false } | E::LeaseExpired { retry: false }) => {
            Ok(S::Failed)
        }
        (S::Running, E::Released) => Ok(S::Ready),
        (S::Blocked | S::Ready | S::Running, E::Cancel) => Ok(S::Cancelled),
        (S::Failed, E::Resume { .. }) => Ok(S::Ready),
        (S::Cancelled | S::UpstreamFailed, E::Resume { deps_met: true }) => Ok(S::Ready),
        (S::Cancelled | S::UpstreamFailed, E::Resume { deps_met: false }) => Ok(S::Blocked),
        (S::Blocked | S::Ready | S::Failed | S::UpstreamFailed, E::Skip) => Ok(S::Skipped),

        // Everything else is refused, written out so that a new state or
        // event does not compile until each case is decided.
        (S::Blocked, E::Claimed | E::Succeeded | E::Expanded | E::Failed { .. }) => invalid,
        (S::Blocked, E::TimedOut { .. } | E::LeaseExpired { .. } | E::Released) => invalid,
        (S::Blocked, E::Resume { .. }) => invalid,
        (S::Ready, E::DepsMet | E::UpstreamFailed | E::Succeeded | E::Expanded) => invalid,
        (S::Ready, E::Failed { .. } | E::TimedOut { .. } | E::LeaseExpired { .. }) => invalid,
        (S::Ready, E::Released | E::Resume { .. }) => invalid,
        (S::Running, E::DepsMet | E::UpstreamFailed | E::Claimed | E::Resume { .. }) => invalid,
        (S::Running, E::Skip) => invalid,
        (S::Succeeded | S::Skipped, _) => invalid,
        (S::Failed, E::DepsMet | E::UpstreamFailed | E::Claimed | E::Succeeded) => invalid,
        (S::Failed, E::Expanded | E::Failed { .. } | E::TimedOut { .. }) => invalid,
        (S::Failed, E::LeaseExpired { .. } | E::Released | E::Cancel) => invalid,
        (S::UpstreamFailed, E::DepsMet | E::UpstreamFailed | E::Claimed | E::Succeeded) => invalid,
        (S::UpstreamFailed, E::Expanded | E::Failed { .. } | E::TimedOut { .. }) => invalid,
        (S::UpstreamFailed, E::LeaseExpired { .. } | E::Released | E::Cancel) => invalid,
        (S::Cancelled, E::DepsMet | E::UpstreamFailed | E::Claimed | E::Succeeded) => invalid,
        (S::Cancelled, E::Expanded | E::Failed { .. } | E::TimedOut { .. }) => invalid,
        (S::Cancelled, E::LeaseExpired { .. } | E::Released | E::Cancel | E::Skip) => invalid,
    }
}

/// The status of a run, derived from its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Some step can still progress.
    Running,
    /// Every step succeeded or was skipped.
    Succeeded,
    /// Nothing can progress and some step failed (or is upstream-failed).
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

impl RunState {
    /// Every run state.
    pub const ALL: [RunState; 4] = [Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];

    /// The name used in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the SQL/JSON name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The run's status from its counters: steps not yet ended, and steps
    /// failed or upstream-failed among the ended ones.
    pub fn derive(cancelled: bool, remaining: u64, failed: u64) -> Self {
        match (cancelled, remaining, failed) {
            (true, _, _) => Self::Cancelled,
            (false, 1.., _) => Self::Running,
            (false, 0, 0) => Self::Succeeded,
            (false, 0, 1..) => Self::Failed,
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_table() {
        let rows: Vec<String> = StepState::ALL
            .iter()
            .flat_map(|&s| {
                StepEvent::ALL.iter().map(move |&e| match transition(s, e) {
                    Ok(to) => format!("{s:<15} + {e:<32} => {to}", e = format!("{e:?}")),
                    Err(_) => format!("{s:<15} + {e:<32} => (refused)", e = format!("{e:?}")),
                })
            })
            .collect();
        insta::assert_snapshot!(rows.join("\n"));
    }

    #[test]
    fn terminal_states_only_move_by_operator() {
        for s in StepState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for e in StepEvent::ALL {
                if let Ok(to) = transition(s, e) {
                    assert!(
                        matches!(e, StepEvent::Resume { .. } | StepEvent::Skip),
                        "{s} moved to {to} by {e:?} without an operator"
                    );
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in StepState::ALL {
            assert_eq!(StepState::parse(s.as_str()), Some(s));
        }
        for r in RunState::ALL {
            assert_eq!(RunState::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn run_state_is_derived_from_counters() {
        assert_eq!(RunState::derive(false, 3, 1), RunState::Running);
        assert_eq!(RunState::derive(false, 0, 0), RunState::Succeeded);
        assert_eq!(RunState::derive(false, 0, 2), RunState::Failed);
        assert_eq!(RunState::derive(true, 3, 0), RunState::Cancelled);
    }
}
