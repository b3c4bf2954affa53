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
    /// How far the fleet of flag readers has applied what is published, when any reader
    /// names itself (or a kill waits to be confirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<crate::confirm::Confirmation>,
    /// Chart series, when asked for (`GET .../{id}?series=1h`); live updates carry their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<Frame>,
    /// Set when the plan file no longer has the stage this rollout stands at: the rollout is
    /// served under the plan it last ran under, read-only but for a kill, until the file is
    /// fixed. Says why and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_mismatch: Option<String>,
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
            confirmation: None,
            frame: None,
            plan_mismatch: None,
            at,
        }
    }
}

/// What an action changes, as the live stream sends it: the snapshot without its plan, which
/// is two thirds of it. A viewer holds the plan from the stream's first (whole) state, and a
/// rollout's plan does not change while a server runs; a new process starts streams whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// The rollout it is for, checked against the snapshot it is applied to.
    pub rollout: String,
    pub state: RolloutState,
    pub traffic: f64,
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
    #[serde(default)]
    pub actuators: Vec<crate::actuate::ActuatorStatus>,
    #[serde(default)]
    pub channels: Vec<crate::notify::ChannelStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<crate::confirm::Confirmation>,
    pub at: Millis,
}

impl Snapshot {
    /// This snapshot as an [`Update`].
    pub fn update(&self) -> Update {
        Update {
            rollout: self.plan.id.clone(),
            state: self.state.clone(),
            traffic: self.traffic,
            gates: self.gates.clone(),
            triggers: self.triggers.clone(),
            actuators: self.actuators.clone(),
            channels: self.channels.clone(),
            confirmation: self.confirmation.clone(),
            at: self.at,
        }
    }

    /// Takes `update` if it is for this rollout; returns whether it was. An update older than
    /// the state held (two commits' updates crossing) is for it but changes nothing: a page
    /// never steps back to an older state.
    pub fn apply(&mut self, update: Update) -> bool {
        if update.rollout != self.plan.id {
            return false;
        }
        if update.state.version < self.state.version {
            return true;
        }
        self.state = update.state;
        self.traffic = update.traffic;
        self.gates = update.gates;
        self.triggers = update.triggers;
        self.actuators = update.actuators;
        self.channels = update.channels;
        self.confirmation = update.confirmation;
        self.at = update.at;
        true
    }
}

/// The once-a-second live update: chart series and every gate and trigger as evaluated now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// Its number on the live stream, which the next delta on the stream names as its
    /// base (0 when it was made for one reader, not sent on a stream).
    #[serde(default)]
    pub seq: u64,
    pub frame: Frame,
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
    /// The other replicas whose metric buckets this server merges into every window, and
    /// when each last wrote one: how fresh their share of the numbers is.
    #[serde(default)]
    pub replicas: Vec<ReplicaFreshness>,
}

/// Another replica's metric buckets as merged here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaFreshness {
    pub replica: String,
    /// Server time of its newest bucket write seen.
    pub as_of: Millis,
}

/// How long a replica may go without writing before it no longer counts as serving: it
/// stopped, or restarted under a new name.
pub const REPLICA_GONE_AFTER: Millis = 5 * crate::time::MINUTE;

impl Tick {
    /// The oldest data among the replicas still writing, and how many they are: the numbers
    /// may lack up to that much of their events.
    pub fn replica_lag(&self) -> Option<(Millis, usize)> {
        let ages: Vec<Millis> = self
            .replicas
            .iter()
            .map(|r| self.frame.at.saturating_sub(r.as_of).max(0))
            .filter(|age| *age < REPLICA_GONE_AFTER)
            .collect();
        Some((*ages.iter().max()?, ages.len()))
    }
}

/// A rollout's health at a glance, for cards and `/health`. Shown as a word, not colour alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every applicable gate passes and no trigger is breaching.
    Healthy,
    /// The metrics are healthy but the plan's clock is not: checklist items past their time,
    /// or T-0 passed with the rollout not started. A card must not read HEALTHY then.
    Overdue,
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
    /// Why health is DEGRADED when no gate says so by failing: a comparison's arms split other
    /// than the stage implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
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
        let overdue = crate::schedule::clock(&self.plan, &self.state, self.at)
            .overdue()
            .count();
        let t0_missed = self.state.phase == crate::rollout::Phase::NotStarted
            && self.state.t0.is_some_and(|t0| self.at > t0);
        // A comparison still gathering evidence is no sign of trouble; one whose arms split
        // other than the stage implies is (the router or an arm is broken).
        let split_off = applicable
            .iter()
            .flat_map(|g| &g.comparisons)
            .find_map(|c| c.sequential.as_ref().and_then(|s| s.split_off.clone()));
        let troubled = applicable
            .iter()
            .any(|g| !matches!(g.verdict, Verdict::Pass | Verdict::NotYetKnown));
        let health = if self.state.phase == crate::rollout::Phase::Killed {
            Health::Killed
        } else if breaching || critical_gate {
            Health::Critical
        } else if troubled || split_off.is_some() {
            Health::Degraded
        } else if overdue > 0 || t0_missed {
            Health::Overdue
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
            health_reason: split_off.clone().filter(|_| health == Health::Degraded),
            blocker: match self.state.phase {
                crate::rollout::Phase::NotStarted
                | crate::rollout::Phase::Running
                | crate::rollout::Phase::Hypercare => split_off
                    .filter(|_| !breaching && !critical_gate)
                    .or_else(|| self.blockers().into_iter().next()),
                _ => None,
            },
            overdue,
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

    /// Healthy metrics with the plan's clock behind (items past their time, or T-0 passed
    /// without a start) read OVERDUE, never HEALTHY; gates failing still read DEGRADED.
    #[test]
    fn a_missed_clock_is_in_the_health_word() {
        let text = "[rollout]\nid = \"c\"\ntitle = \"C\"\n[[stage]]\nid = \"a\"\ntraffic = 10\n\
                    [[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n\
                    [[checklist]]\nid = \"t-60\"\ntitle = \"T-60\"\nphase = \"T-60m\"\nitems = [{ id = \"review\", text = \"Review\" }]\n";
        let plan = crate::plan::parse("c.toml", text).unwrap();
        let hour = 3_600_000;
        let mut state = crate::rollout::RolloutState::new();
        state.t0 = Some(10 * hour);
        // T-90m: nothing due yet.
        let early = Snapshot::new(&plan, &state, vec![], vec![], 10 * hour - 90 * 60_000);
        assert_eq!(early.summary().health, Health::Healthy);
        // T-30m: the T-60 review is overdue.
        let late = Snapshot::new(&plan, &state, vec![], vec![], 10 * hour - 30 * 60_000);
        assert_eq!(late.summary().health, Health::Overdue);
        assert_eq!(late.summary().overdue, 1);
        // A plan with no checklist at T+5m, not started: T-0 was missed.
        let bare =
            crate::plan::parse("b.toml", &text[..text.find("[[checklist]]").unwrap()]).unwrap();
        let missed = Snapshot::new(&bare, &state, vec![], vec![], 10 * hour + 5 * 60_000);
        assert_eq!(missed.summary().overdue, 0);
        assert_eq!(missed.summary().health, Health::Overdue);
    }

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

    /// The other replicas' lag counts those still writing, by the server's own clock.
    #[test]
    fn replica_lag_is_the_oldest_share_still_written() {
        let at = 10 * crate::time::MINUTE;
        let tick = Tick {
            seq: 1,
            frame: Frame {
                rollout: "r".into(),
                at,
                step: 10_000,
                series: vec![],
            },
            gates: vec![],
            triggers: vec![],
            replicas: [
                ("b", at - 2_000),
                ("c", at - 4_500),
                ("gone", at - 6 * crate::time::MINUTE),
            ]
            .into_iter()
            .map(|(r, as_of)| ReplicaFreshness {
                replica: r.into(),
                as_of,
            })
            .collect(),
        };
        assert_eq!(tick.replica_lag(), Some((4_500, 2)));
        let alone = Tick {
            replicas: vec![],
            ..tick
        };
        assert_eq!(alone.replica_lag(), None);
    }

    /// An update carries everything but the plan: applied, it gives the snapshot it came from.
    #[test]
    fn an_update_applied_gives_back_the_snapshot() {
        let text = include_str!("../../plans/semantic-mirror.toml");
        let plan = crate::plan::parse("semantic-mirror.toml", text).unwrap();
        let gates = crate::gates::not_yet_evaluated(&plan, Some("shadow-soak"));
        let old = Snapshot::new(&plan, &RolloutState::new(), Vec::new(), Vec::new(), 1);
        let mut state = RolloutState::new();
        state.version = 7;
        let new = Snapshot::new(&plan, &state, gates, Vec::new(), 2);
        let update = new.update();
        let whole = serde_json::to_string(&new).unwrap().len();
        assert!(serde_json::to_string(&update).unwrap().len() * 2 < whole);
        let mut held = old.clone();
        assert!(held.apply(update.clone()));
        assert_eq!(held, new);
        // One that crossed a newer one on the way changes nothing.
        let mut older = new.clone();
        older.state.version = 6;
        assert!(held.apply(older.update()));
        assert_eq!(held, new);
        let mut other = old;
        other.plan.id = "another".into();
        let before = other.clone();
        assert!(!other.apply(update), "an update for another rollout");
        assert_eq!(other, before);
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
            sequential: None,
        }];
        let snapshot = Snapshot::new(&plan, &RolloutState::new(), gates, Vec::new(), 0);
        let kpis = snapshot.gate_headlines(4);
        assert_eq!(kpis[0].label, "hit-rate");
        assert_eq!(kpis[0].display_value(), "91%");
        assert!(kpis.len() <= 4);
    }
}
