//! What people ask of a rollout (`Action`, `Request`), what they are told when refused
//! (`Refusal`), and what the audit log keeps (`AuditRecord`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Actor, StateSummary};
use crate::flag::FlagValue;
use crate::plan::Permissions;
use crate::role::Role;
use crate::time::{Millis, Span};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Start,
    Progress,
    Pause,
    Resume,
    Kill,
    /// Retreat to the previous stage (its traffic and flags), with a reason: the gentler
    /// rollback, short of the kill switch.
    StepBack,
    /// End the hypercare: the rollout is done.
    Close,
    /// Set T-0 ahead of the start (milliseconds since the epoch).
    Schedule {
        t0: Millis,
    },
    /// A stage that says `auto_progress` is ready (its minimum duration run, every blocking
    /// gate held, its lists and the next stage's sign-offs done): the evaluator progresses it,
    /// naming the stage it leaves, so a progress (or a pause) that got in first is not
    /// followed by a second one.
    AutoProgress {
        stage: String,
    },
    /// A stage ran past its `max_duration`: recorded once per stage entry by the evaluator,
    /// before the stage's `on_max_duration` action.
    Timebox {
        stage: String,
    },
    Override {
        gate: String,
    },
    Check {
        list: String,
        item: String,
    },
    Uncheck {
        list: String,
        item: String,
    },
    Approve,
    /// An alert trigger fired: recorded so the timeline and every chart show it, and changes
    /// nothing else. Only the evaluator (role `system`) records one.
    Alert {
        trigger: String,
    },
    /// Someone is on an open alert (or a kill, `kill`): it stops being open and stops
    /// escalating. It may say what the alert turned out to be, which the report counts.
    Ack {
        alert: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<AckOutcome>,
    },
    /// A decision that changes no state (HAL9's decision log: proceed, extend, investigate),
    /// recorded with its reason and the evidence of the moment.
    Decide {
        decision: Decision,
    },
    /// Set an `[[adjust]]` flag within the current stage, with a reason.
    Adjust {
        flag: String,
        value: FlagValue,
    },
    /// The plan file changed under a started rollout and the state was mapped onto it by
    /// stage id (see [`reconcile`]). Recorded by the server at load, never requested.
    PlanChanged,
}

/// What a lead decides at a review point, in HAL9's decision log's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go on as planned.
    Proceed,
    /// Stay at this stage longer before deciding again.
    Extend,
    /// Something needs looking into before going on.
    Investigate,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Proceed => "proceed",
            Decision::Extend => "extend",
            Decision::Investigate => "investigate",
        }
    }
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Progress => "progress",
            Action::AutoProgress { .. } => "auto_progress",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Kill => "kill",
            Action::StepBack => "step_back",
            Action::Close => "close",
            Action::Schedule { .. } => "schedule",
            Action::Timebox { .. } => "timebox",
            Action::Override { .. } => "override",
            Action::Check { .. } => "check",
            Action::Uncheck { .. } => "uncheck",
            Action::Approve => "approve",
            Action::Alert { .. } => "alert",
            Action::Decide { .. } => "decide",
            Action::Ack { .. } => "ack",
            Action::Adjust { .. } => "adjust",
            Action::PlanChanged => "plan_changed",
        }
    }

    pub(super) fn allowed_roles(&self, p: &Permissions) -> Vec<Role> {
        match self {
            Action::Start | Action::Progress | Action::Close | Action::Schedule { .. } => {
                p.progress.clone()
            }
            Action::Pause => p.pause.clone(),
            Action::Resume => p.resume.clone(),
            Action::Kill => p.kill.clone(),
            Action::StepBack => p.step_back.clone(),
            Action::Override { .. } => p.override_.clone(),
            Action::Check { .. } | Action::Uncheck { .. } => p.check.clone(),
            Action::Approve => p.approve.clone(),
            Action::Decide { .. } => p.decide.clone(),
            Action::Ack { .. } => p.ack.clone(),
            Action::Adjust { .. } => p.adjust.clone(),
            Action::Alert { .. }
            | Action::PlanChanged
            | Action::Timebox { .. }
            | Action::AutoProgress { .. } => vec![Role::System],
        }
    }
}

/// What an acknowledged alert turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckOutcome {
    /// A real problem.
    Real,
    /// The alert was wrong: its threshold or data need work.
    FalsePositive,
    /// Expected (a load test, a known batch job): right, and nothing to do.
    Expected,
}

impl AckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AckOutcome::Real => "real",
            AckOutcome::FalsePositive => "false positive",
            AckOutcome::Expected => "expected",
        }
    }
}

/// One person asking for one action at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub actor: Actor,
    pub action: Action,
    pub reason: Option<String>,
    pub at: Millis,
}

/// A gate's standing for the current stage, from evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReadiness {
    /// Passing right now (binds checklist items to gates).
    pub passing: bool,
    /// How long it has held continuously.
    pub held_for: Span,
    /// How long it must hold.
    pub hold: Span,
    /// Why it is not passing, when it is not: the words a blocker uses.
    #[serde(default)]
    pub standing: Standing,
}

/// Why a gate is not passing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    #[default]
    Failing,
    NoData,
    /// A comparison still gathering evidence: not a failure.
    NotYetKnown,
}

impl GateReadiness {
    /// Held for its whole hold and passing now: a failure it tolerates keeps its hold from
    /// resetting, but nothing progresses on a gate that fails at this moment.
    pub fn held(&self) -> bool {
        self.passing && self.held_for >= self.hold
    }
}

/// Gate id -> readiness. A gate missing here has no data: it has not held.
pub type Readiness = BTreeMap<String, GateReadiness>;

/// What the audit log stores for an accepted action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: Millis,
    pub actor: Actor,
    pub action: Action,
    pub reason: Option<String>,
    pub before: StateSummary,
    pub after: StateSummary,
}

/// Why an action was refused. `Forbidden` is the caller's role; the rest are the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    #[error("{role} may not {action}; allowed: {allowed}")]
    Forbidden {
        action: String,
        role: Role,
        allowed: String,
    },
    #[error("{action} needs a reason")]
    ReasonRequired { action: String },
    #[error(
        "{stage} is the first stage: there is no earlier stage to step back to; kill to roll back fully"
    )]
    FirstStage { stage: String },
    #[error("cannot {action} while the rollout is {phase}")]
    WrongPhase { action: String, phase: String },
    #[error("not ready to enter {stage}: {}", .blockers.join("; "))]
    NotReady {
        stage: String,
        blockers: Vec<String>,
    },
    #[error("{0}")]
    Unknown(String),
    /// A value in the request is out of bounds.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Duplicate(String),
}
