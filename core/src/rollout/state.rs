//! What a rollout is now: its phase and stage, who did what, open alerts, tuned flags.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::flag::FlagValue;
use crate::plan::Plan;
use crate::role::Role;
use crate::time::Millis;

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
    /// Entered by a step back or a resume after a kill: a person progresses from here, not
    /// `auto_progress` (a rollback is a person's to undo).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual_only: bool,
    /// Stage id -> when it was last entered: the clock of items due after a stage's entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entered: BTreeMap<String, Millis>,
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
            entered: BTreeMap::new(),
            manual_only: false,
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

    pub(crate) fn summary(&self, plan: &Plan) -> StateSummary {
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
        if item.every.is_some() {
            // Done once every occurrence in the hypercare is ticked.
            let ticked = self.occurrences_ticked(&list.id, &item.id, since);
            return ticked > 0 && ticked >= item.occurrences;
        }
        let key = format!("{}/{}", list.id, item.id);
        let recent = self.checked.get(&key).is_some_and(|m| m.at >= since);
        recent && self.days_in_a_row(&list.id, &item.id) >= item.days.max(1)
    }

    /// How many occurrences of a recurring item were ticked at or after `since`.
    pub fn occurrences_ticked(&self, list: &str, item: &str, since: Millis) -> u32 {
        let prefix = format!("{list}/{item}#");
        let n = self
            .checked
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, m)| m.at >= since)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

impl Default for RolloutState {
    fn default() -> Self {
        RolloutState::new()
    }
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

/// Where a rollout stands, as an audit record keeps it before and after an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateSummary {
    pub phase: Phase,
    pub stage: Option<String>,
    pub traffic: f64,
}
