//! What a viewer gets for a rollout: the plan, its durable state, and the latest gate and
//! trigger evaluation. The app renders this; it never computes a verdict itself.

use serde::{Deserialize, Serialize};

use crate::gates::{GateStatus, TriggerStatus};
use crate::plan::Plan;
use crate::rollout::RolloutState;
use crate::series::Frame;
use crate::time::Millis;
use crate::unit::Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub plan: Plan,
    pub state: RolloutState,
    /// Traffic the new path serves now (0 when killed or not started).
    pub traffic: f64,
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
    /// How far each actuator has got with applying the state.
    #[serde(default)]
    pub actuators: Vec<crate::actuate::ActuatorStatus>,
    /// How each `[[notify]]` channel's deliveries go.
    #[serde(default)]
    pub channels: Vec<crate::notify::ChannelStatus>,
    /// Chart series, when asked for (`GET .../{id}?series=1h`); live updates carry their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<Frame>,
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
            actuators: Vec::new(),
            channels: Vec::new(),
            frame: None,
            at,
        }
    }
}

/// The once-a-second live update: chart series and every gate and trigger as evaluated now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// Its number on the live stream, which the next [`crate::delta::TickDelta`] names as its
    /// base (0 when it was made for one reader, not sent on a stream).
    #[serde(default)]
    pub seq: u64,
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
    /// Id of the current stage.
    #[serde(default)]
    pub stage_id: Option<String>,
    pub traffic: f64,
    pub gates_passing: usize,
    /// Gates that apply now (not-applicable ones are left out).
    pub gates_total: usize,
    pub health: Health,
    pub stage_entered_at: Option<Millis>,
    /// The few numbers a team quotes about this rollout (p95, error rate, ...), newest window.
    #[serde(default)]
    pub kpis: Vec<Kpi>,
    /// Which stage it is in, 0-based (`None` before start), of how many.
    #[serde(default)]
    pub stage_index: Option<usize>,
    #[serde(default)]
    pub stages: usize,
    /// The first thing that keeps the next step from being taken, if any.
    #[serde(default)]
    pub blocker: Option<String>,
    /// Checklist items past their time from T-0.
    #[serde(default)]
    pub overdue: usize,
    /// The headline metric minute by minute over the last 15 minutes, oldest first.
    #[serde(default)]
    pub trend: Option<Trend>,
    /// Alerts and automatic kills nobody has acknowledged, and since when the oldest is open.
    #[serde(default)]
    pub open_alerts: Vec<String>,
    #[serde(default)]
    pub open_since: Option<Millis>,
    pub at: Millis,
}

/// A short history of one headline number, for a card's sparkline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// What it is, e.g. `p95 latency_ms`.
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// A headline number: what one line of status shows, e.g. `p95=612ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpi {
    /// Short name, e.g. `p95`, `error`, `fallback`.
    pub label: String,
    /// `None` when the window had no samples.
    pub value: Option<f64>,
    /// What the value is in; a ratio is `ratio` on the wire, as it always was.
    #[serde(with = "crate::unit::ratio_word")]
    pub unit: Unit,
}

impl Kpi {
    /// `612ms`, `0.4%`, `n/a`: the value as a person reads it.
    pub fn display_value(&self) -> String {
        self.unit.headline(self.value)
    }
}

impl Snapshot {
    /// This snapshot with the newest tick's gate and trigger statuses: what a page shows
    /// between actions, as gates hold and triggers move every second.
    pub fn with_tick(mut self, tick: Option<&Tick>) -> Snapshot {
        if let Some(t) = tick {
            self.gates = t.gates.clone();
            self.triggers = t.triggers.clone();
            self.at = self.at.max(t.frame.at);
        }
        self
    }

    /// What stands between the rollout and its next step now; empty when it may progress.
    /// What keeps the next step from being taken: the progress (or start), or in
    /// hypercare the close.
    pub fn blockers(&self) -> Vec<String> {
        let readiness = crate::gates::readiness(&self.gates);
        if self.state.phase == crate::rollout::Phase::Hypercare {
            return crate::rollout::close_blockers(&self.plan, &self.state, &readiness, self.at);
        }
        crate::rollout::progress_blockers(&self.plan, &self.state, &readiness, self.at)
    }

    /// Up to `max` headline numbers from the gates: each gate's left side as its board shows
    /// it (e.g. `hit-rate=91%`), for plans whose metrics give no latency or ratio to show.
    pub fn gate_headlines(&self, max: usize) -> Vec<Kpi> {
        self.gates
            .iter()
            .filter_map(|g| {
                let c = g.comparisons.first()?;
                Some(Kpi {
                    label: g.id.clone(),
                    value: c.left_value,
                    unit: c.unit.clone().unwrap_or_default(),
                })
            })
            .take(max)
            .collect()
    }

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
            stage_id: self
                .state
                .stage
                .and_then(|i| self.plan.stages.get(i))
                .map(|s| s.id.clone()),
            traffic: self.traffic,
            gates_passing: passing,
            gates_total: applicable.len(),
            health,
            stage_entered_at: self.state.stage_entered_at,
            kpis: Vec::new(),
            stage_index: self.state.stage,
            stages: self.plan.stages.len(),
            blocker: match self.state.phase {
                crate::rollout::Phase::NotStarted
                | crate::rollout::Phase::Running
                | crate::rollout::Phase::Hypercare => self.blockers().into_iter().next(),
                _ => None,
            },
            overdue: crate::schedule::clock(&self.plan, &self.state, self.at)
                .overdue()
                .count(),
            trend: None,
            open_alerts: self.state.open_alerts.keys().cloned().collect(),
            open_since: self.state.open_alerts.values().map(|o| o.since).min(),
            at: self.at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kpi(value: Option<f64>, unit: &str) -> String {
        Kpi {
            label: "x".into(),
            value,
            unit: Unit::parse(unit),
        }
        .display_value()
    }

    #[test]
    fn kpis_read_like_a_person_writes_them() {
        assert_eq!(kpi(Some(611.7), "ms"), "612ms");
        assert_eq!(kpi(Some(0.004), "ratio"), "0.4%");
        assert_eq!(kpi(Some(0.47), "ratio"), "47%");
        assert_eq!(kpi(Some(0.0), "ratio"), "0%");
        assert_eq!(kpi(Some(1.0), "ratio"), "100%");
        assert_eq!(kpi(Some(0.8123), ""), "0.81");
        assert_eq!(kpi(Some(0.0981), "ratio"), "9.8%");
        assert_eq!(kpi(Some(0.00414), "ratio"), "0.41%");
        assert_eq!(kpi(None, "ms"), "n/a");
    }

    /// A plan of counters (semantic-mirror) headlines its gates' values in their units.
    #[test]
    fn gate_values_are_the_headlines_of_a_counter_plan() {
        let text = include_str!("../../plans/semantic-mirror.toml");
        let plan = crate::plan::parse("semantic-mirror.toml", text).unwrap();
        let mut gates = crate::gates::not_yet_evaluated(&plan, Some("shadow-soak"));
        gates[0].comparisons = vec![crate::expr::CmpTrace {
            left: "sum(queries_successful) / sum(reads_total)".into(),
            left_value: Some(0.912),
            op: ">=".into(),
            right: "85%".into(),
            right_value: Some(0.85),
            holds: Some(true),
            unit: Some(Unit::Ratio),
        }];
        let snapshot = Snapshot::new(&plan, &RolloutState::new(), gates, Vec::new(), 0);
        let kpis = snapshot.gate_headlines(4);
        assert_eq!(kpis[0].label, "hit-rate");
        assert_eq!(kpis[0].display_value(), "91%");
        assert!(kpis.len() <= 4);
    }
}
