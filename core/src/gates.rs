//! Gates and triggers over time. A gate must pass continuously for its `hold` before it lets
//! progress through; any failing or no-data evaluation resets the hold, unless the gate
//! tolerates a few consecutive failures. A trigger fires once per episode after its condition
//! has been true continuously for its `for`. Deterministic: the state moves only with the
//! evaluations it is given.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::expr::{self, CmpTrace, EvalContext, Expr, Outcome, StageMemory};
use crate::plan::{Plan, Severity, TriggerAction};
use crate::query::MetricSource;
use crate::rollout::{GateReadiness, Readiness, Standing};
use crate::time::{Millis, Span};

/// What a gate or trigger said at its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    NoData,
    /// A comparison has not concluded yet: neither a pass nor a failure, and it does not
    /// count toward a hold.
    NotYetKnown,
    /// Its `when` guard is false in this stage.
    NotApplicable,
}

/// The carried state of one gate: since when it has held, how many failures in a row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateMemory {
    pub held_since: Option<Millis>,
    pub failures_in_a_row: u32,
    /// For a gate counted in cycles: when the current window (cycle) began.
    #[serde(default)]
    pub cycle_from: Option<Millis>,
    /// Consecutive cycles that ended passing.
    #[serde(default)]
    pub cycles: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerMemory {
    pub true_since: Option<Millis>,
    /// Fired in the current episode (it fires again only after the condition clears).
    pub fired: bool,
}

/// Everything carried between evaluations of one rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub gates: BTreeMap<String, GateMemory>,
    pub triggers: BTreeMap<String, TriggerMemory>,
    /// When the last evaluation ran: a longer gap than `MAX_UNOBSERVED` before the next one
    /// is time nobody observed.
    #[serde(default)]
    pub observed_at: Option<Millis>,
    /// The current stage's baselines and trigger firings.
    #[serde(default)]
    pub stage: StageMemory,
}

/// Where a rollout stands at one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Moment<'a> {
    /// The current stage's id; before start, the stage a start would enter.
    pub stage: Option<&'a str>,
    /// When the current stage was entered (`None` before start).
    pub entered_at: Option<Millis>,
    /// Whether triggers may act (see [`crate::rollout::Phase::armed`]).
    pub armed: bool,
    pub at: Millis,
}

/// Evaluations come every second, and a leader handover pauses them for about 6 s; a longer
/// gap is time nobody observed.
pub const MAX_UNOBSERVED: Millis = 10 * crate::time::SECOND;

impl Memory {
    /// Time nobody observed does not count: when more than `max_gap` has passed since the
    /// last evaluation (the server was down, or no replica evaluated), every running hold and
    /// trigger episode moves forward by the gap, so it resumes where it was instead of
    /// growing by time in which nobody looked. Call before `evaluate` with the evaluation's
    /// `at`; `evaluate` notes when it ran.
    pub fn skip_unobserved(&mut self, at: Millis, max_gap: Millis) {
        let Some(last) = self.observed_at else { return };
        let gap = at.saturating_sub(last);
        if gap <= max_gap {
            return;
        }
        let shift = |since: &mut Option<Millis>| {
            if let Some(s) = since {
                *s = s.saturating_add(gap).min(at);
            }
        };
        for g in self.gates.values_mut() {
            shift(&mut g.held_since);
            shift(&mut g.cycle_from);
        }
        self.triggers
            .values_mut()
            .for_each(|t| shift(&mut t.true_since));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateStatus {
    pub id: String,
    pub title: String,
    pub expr: String,
    pub verdict: Verdict,
    /// Why there is no data, when there is none.
    pub reason: Option<String>,
    pub comparisons: Vec<CmpTrace>,
    pub window: Span,
    pub hold: Span,
    pub held_for: Span,
    /// How much longer it must hold (zero once held).
    pub needs: Span,
    pub tolerate: u32,
    /// Failures in a row so far (tolerated while <= `tolerate`).
    pub failures_in_a_row: u32,
    pub severity: Severity,
    /// Whether it guards progress out of the current stage.
    pub guards_current: bool,
    /// Windows that must end passing in a row (0: a continuous hold instead).
    #[serde(default)]
    pub cycles: u32,
    /// Of those, how many have so far.
    #[serde(default)]
    pub cycles_passed: u32,
    /// Samples in the window behind the verdict: the most any of its metric reads saw (a
    /// verdict on 12 samples weighs less than one on 12,000).
    #[serde(default)]
    pub samples: u64,
    /// Whether it blocks progress (a warning gate is shown and recorded, and does not).
    #[serde(default = "yes")]
    pub blocks: bool,
    /// The traffic of the stage its hold counts at (holds restart at every stage entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
}

fn yes() -> bool {
    true
}

impl GateStatus {
    /// Has passed continuously for its whole hold, and passes now (a tolerated failure keeps
    /// the hold from resetting; it is not a pass).
    pub fn held(&self) -> bool {
        self.held_for.0 > 0
            && self.needs.0 == 0
            && matches!(self.verdict, Verdict::Pass | Verdict::NotApplicable)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerStatus {
    pub id: String,
    pub title: String,
    pub expr: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub comparisons: Vec<CmpTrace>,
    pub action: TriggerAction,
    pub severity: Severity,
    pub for_: Span,
    /// How long the condition has been true in this episode.
    pub true_for: Span,
    /// Armed in the current stage and state.
    pub armed: bool,
    pub fired: bool,
}

/// A trigger that fired at this evaluation: the caller acts on it (kill, or alert).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub trigger: String,
    pub action: TriggerAction,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluated {
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
    pub firings: Vec<Firing>,
}

impl Evaluated {
    /// Gate readiness as the state machine needs it.
    pub fn readiness(&self) -> Readiness {
        readiness(&self.gates)
    }
}

/// Gate readiness as the state machine needs it, from gate statuses (e.g. a snapshot's).
pub fn readiness(gates: &[GateStatus]) -> Readiness {
    gates
        .iter()
        .map(|g| {
            let passing = matches!(g.verdict, Verdict::Pass | Verdict::NotApplicable);
            (
                g.id.clone(),
                GateReadiness {
                    standing: match g.verdict {
                        Verdict::NoData => Standing::NoData,
                        Verdict::NotYetKnown => Standing::NotYetKnown,
                        _ => Standing::Failing,
                    },
                    passing,
                    held_for: g.held_for,
                    hold: g.hold,
                },
            )
        })
        .collect()
}

/// A plan's expressions, parsed once.
#[derive(Debug, Clone)]
pub struct Compiled {
    gates: Vec<Expr>,
    triggers: Vec<Expr>,
    /// The unit of each comparison's left side, by its text: worked out once per plan, not
    /// on every evaluation.
    units: BTreeMap<String, crate::unit::Unit>,
}

impl Compiled {
    /// Parses every gate and trigger. Plans are validated before they get here, so an error
    /// means the plan was not validated.
    pub fn new(plan: &Plan) -> Result<Compiled, expr::ExprError> {
        let range = |metric: &str| plan.metric(metric).and_then(|m| m.range);
        let parse = |text: &str| {
            expr::parse(text).map(|mut e| {
                e.resolve_ranges(&range);
                e
            })
        };
        let gates: Vec<Expr> = plan
            .gates
            .iter()
            .map(|g| parse(&g.expr))
            .collect::<Result<_, _>>()?;
        let triggers: Vec<Expr> = plan
            .triggers
            .iter()
            .map(|t| parse(&t.expr))
            .collect::<Result<_, _>>()?;
        let mut units = BTreeMap::new();
        for e in gates.iter().chain(&triggers) {
            e.visit(&mut |node| {
                let lhs = match &node.kind {
                    expr::Kind::Cmp(_, lhs, _) => lhs,
                    expr::Kind::Compare { canary, .. } => canary,
                    _ => return,
                };
                if let Some(unit) = crate::chart::unit_of(plan, lhs) {
                    units.insert(lhs.to_string(), unit);
                }
            });
        }
        Ok(Compiled {
            gates,
            triggers,
            units,
        })
    }

    /// The comparisons with the unit their values are in, for the words people read.
    fn with_units(&self, mut comparisons: Vec<CmpTrace>) -> Vec<CmpTrace> {
        for c in &mut comparisons {
            c.unit = self.units.get(&c.left).cloned();
        }
        comparisons
    }
}

impl Compiled {
    /// Every label pair a gate or trigger selects on (`variant="canary"`): the metric store
    /// keeps these when it must fold new label sets together, so these queries stay exact.
    pub fn selected_labels(&self) -> BTreeSet<(String, String)> {
        self.gates
            .iter()
            .chain(&self.triggers)
            .flat_map(Expr::metrics)
            .flat_map(|read| read.selector.into_iter())
            .collect()
    }

    /// Every raw `promql("...")` query in the plan's gates and triggers, once each: what a
    /// Prometheus poller must answer for the evaluation.
    pub fn promql_queries(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for e in self.gates.iter().chain(&self.triggers) {
            e.visit(&mut |e| {
                if let expr::Kind::PromQl(q) = &e.kind {
                    out.insert(q.clone());
                }
            });
        }
        out
    }
}

/// Every gate of `plan` before its first evaluation: no data, held for nothing. A rollout
/// that has not been evaluated yet is never shown as healthy.
pub fn not_yet_evaluated(plan: &Plan, stage: Option<&str>) -> Vec<GateStatus> {
    plan.gates
        .iter()
        .map(|gate| GateStatus {
            id: gate.id.clone(),
            title: gate.title.clone(),
            expr: gate.expr.clone(),
            verdict: Verdict::NoData,
            reason: Some("not evaluated yet".to_string()),
            comparisons: Vec::new(),
            window: gate.window,
            hold: gate.hold,
            held_for: Span(0),
            needs: gate.hold,
            tolerate: gate.tolerate,
            failures_in_a_row: 0,
            severity: gate.severity,
            guards_current: stage.is_some_and(|s| gate.stages.iter().any(|g| g == s)),
            cycles: gate.cycles,
            cycles_passed: 0,
            samples: 0,
            blocks: gate.blocks,
            traffic: None,
        })
        .collect()
}

/// The samples behind a verdict on `e` over `window` at `at`: the most any metric read of it
/// saw in its window.
fn samples(e: &Expr, source: &dyn MetricSource, window: Millis, at: Millis) -> u64 {
    e.metrics()
        .iter()
        .filter_map(|read| {
            source.aggregate(
                &read.metric,
                &read.selector,
                &crate::query::Aggregate::Count,
                window,
                at - read.offset,
            )
        })
        .map(|n| n.max(0.0) as u64)
        .max()
        .unwrap_or(0)
}

fn verdict(outcome: &Outcome) -> (Verdict, Option<String>) {
    match outcome {
        Outcome::Pass => (Verdict::Pass, None),
        Outcome::Fail => (Verdict::Fail, None),
        Outcome::NoData { reason } => (Verdict::NoData, Some(reason.clone())),
        Outcome::NotYetKnown { reason } => (Verdict::NotYetKnown, Some(reason.clone())),
        Outcome::NotApplicable => (Verdict::NotApplicable, None),
    }
}

/// Evaluates every gate and trigger of `plan` at `now.at` and advances `memory`.
pub fn evaluate(
    plan: &Plan,
    compiled: &Compiled,
    memory: &mut Memory,
    source: &dyn MetricSource,
    now: Moment<'_>,
) -> Evaluated {
    let at = now.at;
    memory.observed_at = Some(memory.observed_at.map_or(at, |last| last.max(at)));
    if memory.stage.entered_at != now.entered_at {
        // A new stage (a progress, a step back, a resume after a kill, the start): its
        // baselines are read afresh, its firings start from none, and every gate must hold
        // again at this stage's traffic: a hold never counts time from another stage.
        memory.stage = StageMemory {
            entered_at: now.entered_at,
            ..StageMemory::default()
        };
        memory.gates.clear();
    }
    let empty = BTreeMap::new();
    let flags = now
        .stage
        .and_then(|s| plan.stage(s))
        .map_or(&empty, |s| &s.flags);
    let split = now
        .stage
        .and_then(|s| plan.stage(s))
        .and_then(|s| plan.split.canary_share(s.traffic));
    capture_baselines(plan, compiled, &mut memory.stage, source, flags);
    let gates = plan
        .gates
        .iter()
        .zip(&compiled.gates)
        .map(|(gate, e)| {
            let cx = EvalContext {
                source,
                window: gate.window.0,
                at,
                flags,
                stage: &memory.stage,
                split,
            };
            let ev = expr::evaluate(e, &cx);
            let m = memory.gates.entry(gate.id.clone()).or_default();
            let mut status = gate_status(gate, m, ev, compiled, now);
            status.samples = samples(e, source, gate.window.0, at);
            status.traffic = now.stage.and_then(|s| plan.stage(s)).map(|s| s.traffic);
            status
        })
        .collect();
    let mut triggers = Vec::new();
    let mut firings = Vec::new();
    for (trigger, e) in plan.triggers.iter().zip(&compiled.triggers) {
        let cx = EvalContext {
            source,
            window: trigger.window.0,
            at,
            flags,
            stage: &memory.stage,
            split,
        };
        let mut ev = expr::evaluate(e, &cx);
        ev.comparisons = compiled.with_units(ev.comparisons);
        let (v, reason) = verdict(&ev.outcome);
        let in_stage = now
            .stage
            .is_some_and(|s| trigger.stages.iter().any(|t| t == s));
        let m = memory.triggers.entry(trigger.id.clone()).or_default();
        if v == Verdict::Pass && in_stage && now.armed {
            let since = *m.true_since.get_or_insert(at);
            if at - since >= trigger.for_.0 && !m.fired {
                m.fired = true;
                firings.push(firing(trigger, &ev.comparisons, Span(at - since)));
            }
        } else {
            // The episode is over: the next continuous breach is a new one.
            *m = TriggerMemory::default();
        }
        triggers.push(TriggerStatus {
            id: trigger.id.clone(),
            title: trigger.title.clone(),
            expr: trigger.expr.clone(),
            verdict: v,
            reason,
            comparisons: ev.comparisons,
            action: trigger.action,
            severity: trigger.severity,
            for_: trigger.for_,
            true_for: Span(m.true_since.map_or(0, |since| (at - since).max(0))),
            armed: in_stage && now.armed,
            fired: m.fired,
        });
    }
    for f in &firings {
        let n = memory.stage.fired.entry(f.trigger.clone()).or_default();
        *n = n.saturating_add(1);
    }
    Evaluated {
        gates,
        triggers,
        firings,
    }
}

/// Advances one gate's hold (or its cycles) with this evaluation and says where it stands.
fn gate_status(
    gate: &crate::plan::Gate,
    m: &mut GateMemory,
    ev: expr::Evaluation,
    compiled: &Compiled,
    now: Moment<'_>,
) -> GateStatus {
    let at = now.at;
    let (v, reason) = verdict(&ev.outcome);
    let passing = matches!(v, Verdict::Pass | Verdict::NotApplicable);
    if passing {
        m.failures_in_a_row = 0;
        m.held_since.get_or_insert(at);
    } else if v == Verdict::NotYetKnown {
        // Not a failure, and not time that counts: a hold counts only conclusive time.
        m.held_since = None;
    } else {
        m.failures_in_a_row = m.failures_in_a_row.saturating_add(1);
        if m.failures_in_a_row > gate.tolerate {
            m.held_since = None;
        }
    }
    let (held_for, needs) = if gate.cycles == 0 {
        let held = Span(m.held_since.map_or(0, |since| (at - since).max(0)));
        (held, Span((gate.hold.0 - held.0).max(0)))
    } else {
        // A cycle is judged once, by the evaluation that closes its window: the expression
        // already reads the whole window, so what happened inside it is in that verdict.
        let from = *m.cycle_from.get_or_insert(at);
        if at - from >= gate.window.0 {
            m.cycles = if passing {
                m.cycles.saturating_add(1).min(gate.cycles)
            } else {
                0
            };
            m.cycle_from = Some(at);
        }
        let window = gate.window.0;
        let done = i64::from(m.cycles).saturating_mul(window);
        let left = if m.cycles >= gate.cycles {
            0
        } else {
            let this_cycle = (at - m.cycle_from.unwrap_or(at)).clamp(0, window);
            (gate.hold.0 - done - this_cycle).max(0)
        };
        (Span(done), Span(left))
    };
    GateStatus {
        id: gate.id.clone(),
        title: gate.title.clone(),
        expr: gate.expr.clone(),
        verdict: v,
        reason,
        comparisons: compiled.with_units(ev.comparisons),
        window: gate.window,
        hold: gate.hold,
        held_for,
        needs,
        tolerate: gate.tolerate,
        failures_in_a_row: m.failures_in_a_row,
        severity: gate.severity,
        guards_current: now
            .stage
            .is_some_and(|s| gate.stages.iter().any(|g| g == s)),
        cycles: gate.cycles,
        cycles_passed: m.cycles,
        samples: 0,
        blocks: gate.blocks,
        traffic: None,
    }
}

/// A trigger's firing, with the values that made it fire.
fn firing(trigger: &crate::plan::Trigger, comparisons: &[CmpTrace], true_for: Span) -> Firing {
    let values: Vec<String> = comparisons
        .iter()
        .map(|c| {
            format!(
                "{} = {}",
                c.left,
                c.unit.clone().unwrap_or_default().format(c.left_value)
            )
        })
        .collect();
    Firing {
        trigger: trigger.id.clone(),
        action: trigger.action,
        reason: format!(
            "trigger {} ({}) true for {}: {}",
            trigger.id,
            trigger.title,
            true_for.human(),
            values.join(", ")
        ),
    }
}

/// Reads every `at_entry` baseline not yet captured for the current stage, over the window
/// ending when it was entered. One with no data then is tried again at the next evaluation
/// (late events may still fill it); once read it stays for the whole stage.
fn capture_baselines(
    plan: &Plan,
    compiled: &Compiled,
    stage: &mut StageMemory,
    source: &dyn MetricSource,
    flags: &BTreeMap<String, crate::flag::FlagValue>,
) {
    let Some(entered_at) = stage.entered_at else {
        return;
    };
    let windows = plan
        .gates
        .iter()
        .map(|g| g.window.0)
        .chain(plan.triggers.iter().map(|t| t.window.0));
    let mut found = Vec::new();
    for (window, e) in windows.zip(compiled.gates.iter().chain(&compiled.triggers)) {
        e.visit(&mut |node| {
            if let expr::Kind::AtEntry(inner) = &node.kind {
                let key = expr::baseline_key(window, inner);
                if stage.baselines.contains_key(&key) {
                    return;
                }
                let cx = EvalContext {
                    source,
                    window,
                    at: entered_at,
                    flags,
                    stage,
                    split: None,
                };
                if let Some(v) = expr::value(inner, &cx) {
                    found.push((key, v));
                }
            }
        });
    }
    stage.baselines.extend(found);
}

#[cfg(test)]
mod tests;
