//! The rollout state machine: which actions are allowed in which state, by whom, and what they
//! change. Every accepted action yields exactly one audit record; every refused one a typed
//! reason a UI can show as it is ("gate p95-latency has held 41m of 60m").
//!
//! Gate verdicts come in as `Readiness` (computed elsewhere from metric windows), so this
//! module stays a pure function of plan, state, request and time.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::flag::FlagValue;
use crate::plan::{Permissions, Plan};
use crate::role::Role;
use crate::time::{Millis, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    NotStarted,
    Running,
    Paused,
    /// Rolled back: traffic 0 until a resume.
    Killed,
    /// The last stage is done and the watch after launch is on: full traffic, triggers
    /// armed, kill and step back still work, until a close.
    Hypercare,
    Completed,
}

impl Phase {
    /// Whether triggers act in this phase: while traffic is on the new path and someone is
    /// responsible for it.
    pub fn armed(self) -> bool {
        matches!(self, Phase::Running | Phase::Paused | Phase::Hypercare)
    }
}

/// Who did something, as the audit log and the UI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub role: Role,
    /// The person behind the name, stable across renames: `sso:<subject>` for someone signed
    /// in through the identity provider (or a token bound to them by email). Sign-offs count
    /// people by it; absent, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// As the identity provider states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Other roles the person holds (several groups): an action is taken in the first of
    /// `role` and these that may take it. Never stored: the record names the role that acted.
    #[serde(skip)]
    pub also: Vec<Role>,
}

impl Default for Actor {
    fn default() -> Actor {
        Actor {
            name: String::new(),
            role: Role::Viewer,
            person: None,
            email: None,
            also: Vec::new(),
        }
    }
}

impl Actor {
    /// Who this is, for counting distinct people.
    pub fn person_key(&self) -> &str {
        self.person.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub by: Actor,
    pub at: Millis,
    pub reason: Option<String>,
}

/// The durable state of one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    pub phase: Phase,
    /// Index into the plan's stages; `None` before start.
    pub stage: Option<usize>,
    pub stage_entered_at: Option<Millis>,
    /// Who killed it and why, while killed (kept after resume in the audit log only).
    pub killed: Option<Mark>,
    pub paused: Option<Mark>,
    /// `list/item` -> who checked it.
    pub checked: BTreeMap<String, Mark>,
    /// Stage id -> approvals collected for entering it.
    pub approvals: BTreeMap<String, Vec<Mark>>,
    /// Gate id -> override for the current stage (cleared on every stage change).
    pub overrides: BTreeMap<String, Mark>,
    /// When hypercare began, while in it.
    #[serde(default)]
    pub hypercare_since: Option<Millis>,
    /// T-0: scheduled ahead, or set by the start. Checklist phases such as `T-30m` are due
    /// relative to it.
    #[serde(default)]
    pub t0: Option<Millis>,
    /// `list/item` -> every day (UTC day number) it was checked on, for items that need
    /// checks on several days.
    #[serde(default)]
    pub check_days: BTreeMap<String, Vec<i64>>,
    /// The `stage_entered_at` of the stage whose timebox overrun has been acted on: once per
    /// time a stage is entered.
    #[serde(default)]
    pub timebox_noted: Option<Millis>,
    /// Alerts fired and automatic kills nobody has acknowledged yet, by alert id (the
    /// trigger's id; `kill` for an automatic kill).
    #[serde(default)]
    pub open_alerts: BTreeMap<String, OpenAlert>,
    /// Flags set within the current stage (`adjust`), over the stage's own: undone by the
    /// next stage change, step back or kill.
    #[serde(default)]
    pub adjusted: BTreeMap<String, Adjustment>,
    /// Incremented by every accepted action.
    pub version: u64,
}

/// A flag set within a stage: its value and who set it, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    pub value: FlagValue,
    pub by: Mark,
}

/// An alert (or an automatic kill) waiting for someone to say they are on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub since: Millis,
    /// What fired it: `trigger error-spike`.
    pub by: String,
    pub kind: OpenAlertKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAlertKind {
    Alert,
    Kill,
}

/// The id an automatic kill is acknowledged by.
pub const KILL_ALERT: &str = "kill";

impl RolloutState {
    pub fn new() -> RolloutState {
        RolloutState {
            phase: Phase::NotStarted,
            stage: None,
            stage_entered_at: None,
            killed: None,
            paused: None,
            checked: BTreeMap::new(),
            approvals: BTreeMap::new(),
            overrides: BTreeMap::new(),
            hypercare_since: None,
            t0: None,
            check_days: BTreeMap::new(),
            timebox_noted: None,
            open_alerts: BTreeMap::new(),
            adjusted: BTreeMap::new(),
            version: 0,
        }
    }

    /// Share of traffic the new path serves now: 0 unless running or paused in a stage.
    pub fn traffic(&self, plan: &Plan) -> f64 {
        match self.phase {
            Phase::Running | Phase::Paused | Phase::Hypercare | Phase::Completed => self
                .stage
                .and_then(|i| plan.stages.get(i))
                .map_or(0.0, |s| if s.shadow { 0.0 } else { s.traffic }),
            Phase::NotStarted | Phase::Killed => 0.0,
        }
    }

    fn summary(&self, plan: &Plan) -> StateSummary {
        StateSummary {
            phase: self.phase,
            stage: self
                .stage
                .and_then(|i| plan.stages.get(i))
                .map(|s| s.id.clone()),
            traffic: self.traffic(plan),
        }
    }
}

impl RolloutState {
    /// Days in a row the item has been checked, ending with its latest check (1 for an
    /// ordinary checked item, 0 unchecked).
    pub fn days_in_a_row(&self, list: &str, item: &str) -> u32 {
        let key = format!("{list}/{item}");
        match self.check_days.get(&key) {
            Some(days) => {
                let mut run = 0u32;
                let mut expect = None;
                for d in days.iter().rev() {
                    if expect.is_some_and(|e| e != *d) {
                        break;
                    }
                    run += 1;
                    expect = Some(d - 1);
                }
                run
            }
            None => u32::from(self.checked.contains_key(&key)),
        }
    }

    /// Whether an item is done: checked at or after `since`, and on enough days in a row
    /// when it needs several.
    pub fn item_done(
        &self,
        list: &crate::plan::Checklist,
        item: &crate::plan::Item,
        since: Millis,
    ) -> bool {
        let key = format!("{}/{}", list.id, item.id);
        let recent = self.checked.get(&key).is_some_and(|m| m.at >= since);
        recent && self.days_in_a_row(&list.id, &item.id) >= item.days.max(1)
    }
}

impl Default for RolloutState {
    fn default() -> Self {
        RolloutState::new()
    }
}

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

    fn allowed_roles(&self, p: &Permissions) -> Vec<Role> {
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
            Action::Alert { .. } | Action::PlanChanged | Action::Timebox { .. } => {
                vec![Role::System]
            }
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
}

impl GateReadiness {
    pub fn held(&self) -> bool {
        self.held_for >= self.hold
    }
}

/// Gate id -> readiness. A gate missing here has no data: it has not held.
pub type Readiness = BTreeMap<String, GateReadiness>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSummary {
    pub phase: Phase,
    pub stage: Option<String>,
    pub traffic: f64,
}

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

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::NotStarted => "not started",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Killed => "killed",
            Phase::Hypercare => "in hypercare",
            Phase::Completed => "completed",
        })
    }
}

/// Applies `request` to `state`. On success returns the new state and its audit record.
pub fn apply(
    plan: &Plan,
    state: &RolloutState,
    request: &Request,
    readiness: &Readiness,
) -> Result<(RolloutState, AuditRecord), Refusal> {
    if !request.actor.also.is_empty() {
        // Several roles: the first that may take the action takes it (the highest grant wins
        // per permission); if none may, the refusal names the first role.
        let mut first = None;
        for role in std::iter::once(request.actor.role).chain(request.actor.also.iter().copied()) {
            let mut one = request.clone();
            one.actor.role = role;
            one.actor.also.clear();
            match apply(plan, state, &one, readiness) {
                Err(e @ Refusal::Forbidden { .. }) => {
                    first.get_or_insert(e);
                }
                other => return other,
            }
        }
        return Err(first.expect("at least one role was tried"));
    }
    let action = &request.action;
    let allowed = action.allowed_roles(&plan.permissions);
    // A rollback trigger acts whatever the plan's permissions say: that is its whole point.
    let automatic =
        request.actor.role == Role::System && matches!(action, Action::Kill | Action::StepBack);
    if !automatic && !allowed.contains(&request.actor.role) {
        return Err(Refusal::Forbidden {
            action: action.name().into(),
            role: request.actor.role,
            allowed: allowed
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let needs_reason = matches!(
        action,
        Action::Kill
            | Action::StepBack
            | Action::Override { .. }
            | Action::Alert { .. }
            | Action::Timebox { .. }
            | Action::Decide { .. }
            | Action::Adjust { .. }
    ) || (matches!(action, Action::Resume) && state.phase == Phase::Killed);
    if needs_reason && reason.is_none() {
        return Err(Refusal::ReasonRequired {
            action: action.name().into(),
        });
    }
    let wrong_phase = || Refusal::WrongPhase {
        action: action.name().into(),
        phase: state.phase.to_string(),
    };
    let mark = Mark {
        by: request.actor.clone(),
        at: request.at,
        reason: reason.map(str::to_string),
    };
    let mut next = state.clone();
    match action {
        Action::Start => {
            if state.phase != Phase::NotStarted {
                return Err(wrong_phase());
            }
            entry_blockers(plan, state, 0, readiness, &[])?;
            enter(&mut next, 0, request.at);
            next.phase = Phase::Running;
            // A start at the scheduled time keeps it; one without a schedule is T-0.
            next.t0.get_or_insert(request.at);
        }
        Action::Schedule { t0 } => {
            if state.phase != Phase::NotStarted {
                return Err(wrong_phase());
            }
            if t0.abs_diff(request.at) > crate::time::MAX_SCHEDULE.unsigned_abs() {
                return Err(Refusal::Invalid(format!(
                    "T-0 must be within {} of now",
                    Span(crate::time::MAX_SCHEDULE).human()
                )));
            }
            next.t0 = Some(*t0);
        }
        Action::Timebox { stage } => {
            let current = state.stage.and_then(|i| plan.stages.get(i));
            let over = overrun(plan, state, request.at);
            if current.is_none_or(|s| &s.id != stage) || over.is_none() {
                return Err(Refusal::Unknown(format!(
                    "stage {stage} is not past its max_duration"
                )));
            }
            if state.timebox_noted.is_some() && state.timebox_noted == state.stage_entered_at {
                return Err(Refusal::Duplicate(format!(
                    "the overrun of {stage} is already recorded"
                )));
            }
            next.timebox_noted = state.stage_entered_at;
        }
        Action::Progress => {
            let current = match (state.phase, state.stage) {
                (Phase::Running, Some(i)) => i,
                _ => return Err(wrong_phase()),
            };
            let stage_blockers = stage_blockers(plan, state, current, readiness, request.at);
            if current + 1 >= plan.stages.len() {
                if !stage_blockers.is_empty() {
                    let stage = plan
                        .stages
                        .get(current)
                        .map_or(String::new(), |s| s.id.clone());
                    return Err(Refusal::NotReady {
                        stage: format!("completion of {stage}"),
                        blockers: stage_blockers,
                    });
                }
                // With a watch after launch the rollout stays live until a close; without
                // one, completing the last stage is the close.
                if plan.hypercare.is_some() {
                    next.phase = Phase::Hypercare;
                    next.hypercare_since = Some(request.at);
                } else {
                    next.phase = Phase::Completed;
                }
            } else {
                entry_blockers(plan, state, current + 1, readiness, &stage_blockers)?;
                enter(&mut next, current + 1, request.at);
            }
        }
        Action::Pause => {
            if state.phase != Phase::Running {
                return Err(wrong_phase());
            }
            next.phase = Phase::Paused;
            next.paused = Some(mark.clone());
        }
        Action::Resume => match state.phase {
            Phase::Paused => {
                next.phase = Phase::Running;
                next.paused = None;
            }
            // Back to the stage it was killed in, with its clock restarted: gates must hold
            // again before the next progress.
            Phase::Killed => {
                let since = state.killed.as_ref().map_or(0, |k| k.at);
                let blockers =
                    checklist_blockers(plan, state, readiness, since, |c| c.required_to_resume);
                if !blockers.is_empty() {
                    return Err(Refusal::NotReady {
                        stage: "resume after the kill".into(),
                        blockers,
                    });
                }
                next.hypercare_since = None;
                next.phase = if state.stage.is_some() {
                    Phase::Running
                } else {
                    Phase::NotStarted
                };
                next.killed = None;
                next.paused = None;
                if let Some(i) = state.stage {
                    enter(&mut next, i, request.at);
                }
            }
            _ => return Err(wrong_phase()),
        },
        Action::Kill => {
            if matches!(state.phase, Phase::Killed | Phase::Completed) {
                return Err(wrong_phase());
            }
            next.phase = Phase::Killed;
            next.killed = Some(mark.clone());
            next.adjusted.clear();
            // A kill is open until a person says they are on it, whoever pressed it: the
            // on-call is paged for a manual kill too, and the acknowledgement says who has it.
            next.open_alerts
                .entry(KILL_ALERT.to_string())
                .or_insert(OpenAlert {
                    since: request.at,
                    by: request.actor.name.clone(),
                    kind: OpenAlertKind::Kill,
                });
        }
        Action::StepBack => {
            let current = match (state.phase, state.stage) {
                (Phase::Running | Phase::Paused | Phase::Hypercare | Phase::Completed, Some(i)) => {
                    i
                }
                _ => return Err(wrong_phase()),
            };
            let Some(previous) = current.checked_sub(1) else {
                let stage = plan.stages.first().map_or("", |s| s.id.as_str());
                return Err(Refusal::FirstStage {
                    stage: stage.to_string(),
                });
            };
            // The previous stage's clock starts again: its gates must hold before a new
            // progress. A paused rollout stays paused; a completed one runs again.
            enter(&mut next, previous, request.at);
            if matches!(state.phase, Phase::Hypercare | Phase::Completed) {
                next.phase = Phase::Running;
                next.hypercare_since = None;
            }
        }
        Action::Close => {
            if state.phase != Phase::Hypercare {
                return Err(wrong_phase());
            }
            let blockers = close_blockers(plan, state, readiness, request.at);
            if !blockers.is_empty() {
                return Err(Refusal::NotReady {
                    stage: "the close".into(),
                    blockers,
                });
            }
            next.phase = Phase::Completed;
            next.hypercare_since = None;
        }
        Action::Override { gate } => {
            let current = match (state.phase, state.stage) {
                (Phase::Running | Phase::Paused, Some(i)) => i,
                _ => return Err(wrong_phase()),
            };
            let stage_id = plan.stages.get(current).map_or("", |s| s.id.as_str());
            let guards = plan
                .gates
                .iter()
                .any(|g| &g.id == gate && g.stages.iter().any(|s| s == stage_id));
            if !guards {
                return Err(Refusal::Unknown(format!(
                    "no gate \"{gate}\" guards stage {stage_id}"
                )));
            }
            next.overrides.insert(gate.clone(), mark.clone());
        }
        Action::Check { list, item } | Action::Uncheck { list, item } => {
            let Some(found) = plan
                .checklists
                .iter()
                .find(|c| &c.id == list)
                .and_then(|c| c.items.iter().find(|i| &i.id == item))
            else {
                return Err(Refusal::Unknown(format!("no checklist item {list}/{item}")));
            };
            if let Some(role) = found.role
                && role != request.actor.role
                && request.actor.role != Role::Lead
            {
                return Err(Refusal::Forbidden {
                    action: format!("{} {list}/{item}", action.name()),
                    role: request.actor.role,
                    allowed: format!("{role}, lead"),
                });
            }
            let key = format!("{list}/{item}");
            let day = request.at.div_euclid(crate::time::DAY);
            let checking = matches!(action, Action::Check { .. });
            if found.days > 1 {
                // Several days' checks: one a day, each kept; an uncheck takes back the last.
                let days = next.check_days.entry(key.clone()).or_default();
                if checking {
                    if days.last() == Some(&day) {
                        return Err(Refusal::Duplicate(format!(
                            "{key} is already checked today"
                        )));
                    }
                    days.push(day);
                    next.checked.insert(key, mark.clone());
                } else if days.pop().is_none() {
                    return Err(Refusal::Duplicate(format!("{key} is not checked")));
                } else if days.is_empty() {
                    next.check_days.remove(&key);
                    next.checked.remove(&key);
                }
            } else if checking {
                if state.checked.contains_key(&key) {
                    return Err(Refusal::Duplicate(format!("{key} is already checked")));
                }
                next.checked.insert(key, mark.clone());
            } else if next.checked.remove(&key).is_none() {
                return Err(Refusal::Duplicate(format!("{key} is not checked")));
            }
        }
        Action::PlanChanged => {
            return Err(Refusal::Unknown(
                "a plan change is recorded when the server loads the plan, not requested".into(),
            ));
        }
        // Recorded as it is: the record and its evidence are the point.
        Action::Decide { .. } => {}
        Action::Adjust { flag, value } => {
            let current = match (state.phase, state.stage) {
                (Phase::Running | Phase::Paused | Phase::Hypercare, Some(i)) => i,
                _ => return Err(wrong_phase()),
            };
            let stage = plan.stages.get(current).map_or("", |s| s.id.as_str());
            let Some(allowed) = plan.adjustable(flag, stage) else {
                return Err(Refusal::Unknown(format!(
                    "{flag} cannot be adjusted in stage {stage} (the plan's [[adjust]] names what may be)"
                )));
            };
            check_adjustment(
                allowed,
                plan.stages.get(current).and_then(|s| s.flags.get(flag)),
                value,
            )
            .map_err(Refusal::Invalid)?;
            next.adjusted.insert(
                flag.clone(),
                Adjustment {
                    value: value.clone(),
                    by: mark.clone(),
                },
            );
        }
        Action::Ack { alert, .. } => {
            if next.open_alerts.remove(alert).is_none() {
                let open: Vec<&str> = state.open_alerts.keys().map(String::as_str).collect();
                return Err(Refusal::Unknown(format!(
                    "no open alert \"{alert}\" (open: {})",
                    if open.is_empty() {
                        "none".to_string()
                    } else {
                        open.join(", ")
                    }
                )));
            }
        }
        Action::Alert { trigger } => {
            let alerting = plan
                .triggers
                .iter()
                .any(|t| &t.id == trigger && t.action == crate::plan::TriggerAction::Alert);
            if !alerting {
                return Err(Refusal::Unknown(format!("no alert trigger \"{trigger}\"")));
            }
            // Open until acknowledged; a firing while open keeps the first time.
            next.open_alerts
                .entry(trigger.clone())
                .or_insert(OpenAlert {
                    since: request.at,
                    by: request.actor.name.clone(),
                    kind: OpenAlertKind::Alert,
                });
        }
        Action::Approve => {
            let target = match (state.phase, state.stage) {
                (Phase::NotStarted, _) => 0,
                (Phase::Running | Phase::Paused, Some(i)) => i + 1,
                _ => return Err(wrong_phase()),
            };
            let Some(stage) = plan.stages.get(target) else {
                return Err(Refusal::Unknown("there is no next stage to approve".into()));
            };
            let Some(signoff) = plan.signoffs.iter().find(|s| s.stage == stage.id) else {
                return Err(Refusal::Unknown(format!(
                    "entering {} needs no sign-off",
                    stage.id
                )));
            };
            if !signoff.roles.contains(&request.actor.role) {
                return Err(Refusal::Forbidden {
                    action: format!("approve {}", stage.id),
                    role: request.actor.role,
                    allowed: signoff
                        .roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let approvals = next.approvals.entry(stage.id.clone()).or_default();
            if let Some(earlier) = approvals
                .iter()
                .find(|m| m.by.person_key() == request.actor.person_key())
            {
                // One person, however they came in (a token bound to their email, a session).
                let who = if earlier.by.name == request.actor.name {
                    request.actor.name.clone()
                } else {
                    format!(
                        "{} (the same person as {})",
                        request.actor.name, earlier.by.name
                    )
                };
                return Err(Refusal::Duplicate(format!(
                    "{who} already approved {}",
                    stage.id
                )));
            }
            // One approval per role when the sign-off asks each role: a second lead does
            // not stand in for product.
            if signoff.each && approvals.iter().any(|m| m.by.role == request.actor.role) {
                return Err(Refusal::Duplicate(format!(
                    "{} has already approved {} for the {} role; it needs each of {}",
                    approvals
                        .iter()
                        .find(|m| m.by.role == request.actor.role)
                        .map_or("someone", |m| m.by.name.as_str()),
                    stage.id,
                    request.actor.role.as_str(),
                    signoff
                        .roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            approvals.push(mark.clone());
        }
    }
    next.version = state.version + 1;
    let record = AuditRecord {
        at: request.at,
        actor: request.actor.clone(),
        action: action.clone(),
        reason: mark.reason,
        before: state.summary(plan),
        after: next.summary(plan),
    };
    Ok((next, record))
}

/// What stands between the rollout and its next step (start, the next stage, or completion)
/// at `now`, in the words a refusal would use. Empty when a permitted role could progress.
pub fn progress_blockers(
    plan: &Plan,
    state: &RolloutState,
    readiness: &Readiness,
    now: Millis,
) -> Vec<String> {
    let not_ready = |r: Result<(), Refusal>| match r {
        Err(Refusal::NotReady { blockers, .. }) => blockers,
        Err(other) => vec![other.to_string()],
        Ok(()) => Vec::new(),
    };
    match (state.phase, state.stage) {
        (Phase::NotStarted, _) => not_ready(entry_blockers(plan, state, 0, readiness, &[])),
        (Phase::Running, Some(current)) => {
            let blockers = stage_blockers(plan, state, current, readiness, now);
            if current + 1 >= plan.stages.len() {
                blockers
            } else {
                not_ready(entry_blockers(
                    plan,
                    state,
                    current + 1,
                    readiness,
                    &blockers,
                ))
            }
        }
        (phase, _) => vec![format!("the rollout is {phase}")],
    }
}

/// What loading a changed plan does to a started rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// Nothing the world sees changes: same stage at the same place, same traffic and flags.
    Unchanged,
    /// The state maps onto the new plan; the record says what changed, for the audit log.
    Changed(RolloutState, AuditRecord),
}

/// Why a changed plan cannot take over a started rollout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error(
        "rollout {rollout} is {phase} at stage \"{stage}\", which the changed plan no longer has: \
         put the stage back, or finish or reset the rollout before removing it"
    )]
    StageRemoved {
        rollout: String,
        phase: String,
        stage: String,
    },
}

/// Maps a rollout's state from the plan it ran under (`old`) onto the plan now loaded (`new`),
/// by stage id rather than by position, so an edit that inserts or reorders stages never moves
/// traffic by itself. `edited` says the plan file changed at all (its hash, which counts the
/// actuators and channels browsers never see): every edit is a new state version with an
/// audit record, so what the actuators are sent, and where, never changes under one version
/// (re-pointing the kill webhook, or a kill's rollback flags edited under a killed rollout,
/// leaves a record). A stage that is gone is refused.
pub fn reconcile(
    old: &Plan,
    new: &Plan,
    state: &RolloutState,
    edited: bool,
    at: Millis,
) -> Result<Reconciled, ReconcileError> {
    let mut changes = Vec::new();
    let mut next = state.clone();
    if let Some(index) = state.stage
        && let Some(current) = old.stages.get(index)
    {
        let Some(new_index) = new.stages.iter().position(|s| s.id == current.id) else {
            return Err(ReconcileError::StageRemoved {
                rollout: new.id.clone(),
                phase: state.phase.to_string(),
                stage: current.id.clone(),
            });
        };
        let now = &new.stages[new_index];
        if new_index != index {
            changes.push(format!(
                "stage {} moved from #{} to #{} of {}",
                current.id,
                index + 1,
                new_index + 1,
                new.stages.len()
            ));
        }
        if now.traffic != current.traffic || now.shadow != current.shadow {
            changes.push(format!(
                "its traffic changed from {}% to {}%{}",
                current.traffic,
                now.traffic,
                if now.shadow { " (shadow)" } else { "" }
            ));
        }
        if now.flags != current.flags {
            changes.push("its flags changed".to_string());
        }
        if state.phase == Phase::Killed
            && old.rollback_flags(Some(index)) != new.rollback_flags(Some(new_index))
        {
            changes.push("what its kill publishes changed (the rollback flags)".to_string());
        }
        next.stage = Some(new_index);
    }
    if changes.is_empty() && !edited {
        return Ok(Reconciled::Unchanged);
    }
    if changes.is_empty() {
        changes.push(
            "nothing it publishes moved, but the plan did (gates, checklists, actuators or channels)"
                .to_string(),
        );
    }
    next.version += 1;
    let record = AuditRecord {
        at,
        actor: Actor {
            name: "plan file".into(),
            role: Role::System,
            ..Default::default()
        },
        action: Action::PlanChanged,
        reason: Some(format!(
            "the plan changed while the rollout was {}: {}",
            state.phase,
            changes.join("; ")
        )),
        before: state.summary(old),
        after: next.summary(new),
    };
    Ok(Reconciled::Changed(next, record))
}

fn enter(state: &mut RolloutState, stage: usize, at: Millis) {
    state.stage = Some(stage);
    state.stage_entered_at = Some(at);
    state.overrides.clear();
    state.adjusted.clear();
}

/// Whether `value` fits an `[[adjust]]` entry and the type the stage gives the flag.
fn check_adjustment(
    allowed: &crate::plan::Adjustable,
    stage_value: Option<&FlagValue>,
    value: &FlagValue,
) -> Result<(), String> {
    let flag = &allowed.flag;
    let same_type = match (stage_value, value) {
        (None, _) => true,
        (Some(a), b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    };
    if !same_type {
        return Err(format!(
            "{flag} is {} in this stage: an adjustment must be of the same kind",
            stage_value.map(|v| v.to_string()).unwrap_or_default()
        ));
    }
    match value {
        FlagValue::Number(n) => {
            if !n.is_finite() {
                return Err(format!("{flag} must be a finite number"));
            }
            if !allowed.values.is_empty() {
                return Err(format!(
                    "{flag} takes one of: {}",
                    allowed.values.join(", ")
                ));
            }
            if allowed.min.is_some_and(|lo| *n < lo) || allowed.max.is_some_and(|hi| *n > hi) {
                return Err(format!(
                    "{flag} must be within {} to {}",
                    allowed.min.map_or("any".into(), |v| v.to_string()),
                    allowed.max.map_or("any".into(), |v| v.to_string())
                ));
            }
        }
        FlagValue::Text(t) => {
            if allowed.min.is_some() || allowed.max.is_some() {
                return Err(format!("{flag} takes a number"));
            }
            if t.len() > 256 {
                return Err(format!("{flag} takes at most 256 bytes of text"));
            }
            if !allowed.values.is_empty() && !allowed.values.iter().any(|v| v == t) {
                return Err(format!(
                    "{flag} takes one of: {}",
                    allowed.values.join(", ")
                ));
            }
        }
        FlagValue::Bool(_) => {
            if allowed.min.is_some() || allowed.max.is_some() || !allowed.values.is_empty() {
                return Err(format!("{flag} takes a number or one of its named values"));
            }
        }
    }
    Ok(())
}

/// What keeps the current stage from being done: its minimum duration and its gates.
fn stage_blockers(
    plan: &Plan,
    state: &RolloutState,
    current: usize,
    readiness: &Readiness,
    now: Millis,
) -> Vec<String> {
    let mut blockers = Vec::new();
    let Some(stage) = plan.stages.get(current) else {
        return blockers;
    };
    if let (Some(min), Some(entered)) = (stage.min_duration, state.stage_entered_at) {
        let spent = Span(now - entered);
        if spent < min {
            blockers.push(format!(
                "stage {} has run {} of its minimum {}",
                stage.id,
                spent.human(),
                min.human()
            ));
        }
    }
    // A warning gate is shown and recorded; only a blocking one holds progress back.
    for gate in plan
        .gates
        .iter()
        .filter(|g| g.blocks && g.stages.contains(&stage.id))
    {
        if state.overrides.contains_key(&gate.id) {
            continue;
        }
        match readiness.get(&gate.id) {
            Some(r) if r.held() => {}
            Some(r) if r.held_for.0 > 0 => blockers.push(format!(
                "gate {} has held {} of {}",
                gate.id,
                r.held_for.human(),
                gate.hold.human()
            )),
            Some(r) if r.passing => blockers.push(format!(
                "gate {} has just started to hold (needs {})",
                gate.id,
                gate.hold.human()
            )),
            Some(_) => blockers.push(format!("gate {} is failing", gate.id)),
            None => blockers.push(format!("gate {} has no data", gate.id)),
        }
    }
    // Checklists that must be done before this stage is left; after the last stage with no
    // watch after launch, leaving it closes the rollout.
    let last_without_hypercare = current + 1 >= plan.stages.len() && plan.hypercare.is_none();
    blockers.extend(checklist_blockers(plan, state, readiness, 0, |c| {
        c.required_to_leave.as_deref() == Some(&stage.id)
            || (last_without_hypercare && c.required_to_close)
    }));
    blockers
}

/// The open items of the checklists `pick` selects, one line per list. An item counts as
/// done when checked at or after `since`, or when the gate it names passes.
fn checklist_blockers(
    plan: &Plan,
    state: &RolloutState,
    readiness: &Readiness,
    since: Millis,
    pick: impl Fn(&crate::plan::Checklist) -> bool,
) -> Vec<String> {
    let mut blockers = Vec::new();
    for list in plan.checklists.iter().filter(|c| pick(c)) {
        let open: Vec<&str> = list
            .items
            .iter()
            .filter(|i| {
                let by_gate = i
                    .gate
                    .as_ref()
                    .is_some_and(|g| readiness.get(g).is_some_and(|r| r.passing));
                let checked = state.item_done(list, i, since);
                !by_gate && !checked
            })
            .map(|i| i.id.as_str())
            .collect();
        if !open.is_empty() {
            blockers.push(format!(
                "checklist {} has {} open item(s): {}",
                list.id,
                open.len(),
                open.join(", ")
            ));
        }
    }
    blockers
}

/// What keeps a rollout in hypercare from being closed: the watch's remaining time and the
/// checklists required to close.
pub fn close_blockers(
    plan: &Plan,
    state: &RolloutState,
    readiness: &Readiness,
    now: Millis,
) -> Vec<String> {
    let mut blockers = Vec::new();
    if let (Some(watch), Some(since)) = (plan.hypercare, state.hypercare_since) {
        let spent = Span(now.saturating_sub(since));
        if spent < watch {
            blockers.push(format!(
                "hypercare has run {} of {}",
                spent.human(),
                watch.human()
            ));
        }
    }
    blockers.extend(checklist_blockers(plan, state, readiness, 0, |c| {
        c.required_to_close
    }));
    blockers
}

/// What keeps `target` from being entered: the current stage's blockers plus the target's
/// required checklists and sign-offs.
fn entry_blockers(
    plan: &Plan,
    state: &RolloutState,
    target: usize,
    readiness: &Readiness,
    stage_blockers: &[String],
) -> Result<(), Refusal> {
    let Some(stage) = plan.stages.get(target) else {
        return Err(Refusal::Unknown("no such stage".into()));
    };
    let mut blockers = stage_blockers.to_vec();
    blockers.extend(checklist_blockers(plan, state, readiness, 0, |c| {
        c.required_for.as_deref() == Some(&stage.id)
    }));
    for signoff in plan.signoffs.iter().filter(|s| s.stage == stage.id) {
        let marks = state
            .approvals
            .get(&stage.id)
            .map_or(&[][..], Vec::as_slice);
        if signoff.each {
            let missing: Vec<&str> = signoff
                .roles
                .iter()
                .filter(|r| !marks.iter().any(|m| m.by.role == **r))
                .map(|r| r.as_str())
                .collect();
            if !missing.is_empty() {
                blockers.push(format!(
                    "sign-off for {} needs an approval from {}",
                    stage.id,
                    missing.join(" and ")
                ));
            }
            continue;
        }
        let have = marks.len();
        if have < signoff.approvals as usize {
            blockers.push(format!(
                "sign-off for {} has {have} of {} approvals",
                stage.id, signoff.approvals
            ));
        }
    }
    if blockers.is_empty() {
        Ok(())
    } else {
        Err(Refusal::NotReady {
            stage: stage.id.clone(),
            blockers,
        })
    }
}

/// A stage that has run past its `max_duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overrun {
    pub stage: String,
    pub max: Span,
    /// How long the stage has run.
    pub ran: Span,
    pub action: crate::plan::TriggerAction,
}

impl Overrun {
    pub fn reason(&self) -> String {
        format!(
            "stage {} has run {}, past its max_duration {}",
            self.stage,
            self.ran.human(),
            self.max.human()
        )
    }
}

/// The current stage's overrun at `now`, while someone is responsible for it (running or
/// paused; not after the last stage is done).
pub fn overrun(plan: &Plan, state: &RolloutState, now: Millis) -> Option<Overrun> {
    if !matches!(state.phase, Phase::Running | Phase::Paused) {
        return None;
    }
    let stage = plan.stages.get(state.stage?)?;
    let max = stage.max_duration?;
    let ran = Span(now.saturating_sub(state.stage_entered_at?));
    (ran > max).then(|| Overrun {
        stage: stage.id.clone(),
        max,
        ran,
        action: stage.on_max_duration,
    })
}

#[cfg(test)]
mod tests;
