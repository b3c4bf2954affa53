//! What a viewer gets for a rollout: the plan, its durable state, and the latest gate and
//! trigger evaluation. The app renders this; it never computes a verdict itself.

use serde::{Deserialize, Serialize};

use crate::gates::{GateStatus, TriggerStatus};
use crate::plan::Plan;
use crate::rollout::RolloutState;
use crate::series::Frame;
use crate::time::Millis;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub plan: Plan,
    pub state: RolloutState,
    /// Traffic the new path serves now (0 when killed or not started).
    pub traffic: f64,
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
    /// Server time the snapshot was taken.
    pub at: Millis,
}

impl Snapshot {
    pub fn new(
        plan: &Plan,
        state: &RolloutState,
        gates: Vec<GateStatus>,
        triggers: Vec<TriggerStatus>,
        at: Millis,
    ) -> Snapshot {
        Snapshot {
            plan: plan.clone(),
            state: state.clone(),
            traffic: state.traffic(plan),
            gates,
            triggers,
            at,
        }
    }
}

/// The once-a-second live update: chart series and every gate and trigger as evaluated now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub frame: Frame,
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
}

/// A rollout's health at a glance, for cards and `/health`. Shown as a word, not colour alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every applicable gate passes and no trigger is breaching.
    Healthy,
    /// A gate fails or has no data.
    Degraded,
    /// A kill trigger is breaching, or a critical gate guarding this stage fails.
    Critical,
    Killed,
}

/// One line of the overview: where a rollout stands and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub phase: crate::rollout::Phase,
    /// Title of the current stage.
    pub stage: Option<String>,
    pub traffic: f64,
    pub gates_passing: usize,
    /// Gates that apply now (not-applicable ones are left out).
    pub gates_total: usize,
    pub health: Health,
    pub stage_entered_at: Option<Millis>,
    pub at: Millis,
}

impl Snapshot {
    pub fn summary(&self) -> Summary {
        use crate::gates::Verdict;
        use crate::plan::{Severity, TriggerAction};
        let applicable: Vec<_> = self
            .gates
            .iter()
            .filter(|g| g.verdict != Verdict::NotApplicable)
            .collect();
        let passing = applicable
            .iter()
            .filter(|g| g.verdict == Verdict::Pass)
            .count();
        let breaching = self
            .triggers
            .iter()
            .any(|t| t.armed && t.action == TriggerAction::Kill && t.verdict == Verdict::Pass);
        let critical_gate = applicable.iter().any(|g| {
            g.guards_current && g.severity == Severity::Critical && g.verdict == Verdict::Fail
        });
        let health = if self.state.phase == crate::rollout::Phase::Killed {
            Health::Killed
        } else if breaching || critical_gate {
            Health::Critical
        } else if passing < applicable.len() {
            Health::Degraded
        } else {
            Health::Healthy
        };
        Summary {
            id: self.plan.id.clone(),
            title: self.plan.title.clone(),
            phase: self.state.phase,
            stage: self
                .state
                .stage
                .and_then(|i| self.plan.stages.get(i))
                .map(|s| s.title.clone()),
            traffic: self.traffic,
            gates_passing: passing,
            gates_total: applicable.len(),
            health,
            stage_entered_at: self.state.stage_entered_at,
            at: self.at,
        }
    }
}
