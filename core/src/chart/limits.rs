//! Where a plan's gates and triggers draw their lines: which limit, of which kind, at what value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::expr::{self, CmpOp, EvalContext, Expr, Kind};
use crate::plan::Plan;

use super::*;

/// A horizontal line at a gate's limit or a trigger's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The series it applies to, e.g. `latency_ms.p95`.
    pub series: String,
    /// In the series' own unit (ratios 0..1).
    pub value: f64,
    /// The gate or trigger it comes from.
    pub gate: String,
    /// What crossing it means: a gate's limit, or a line past which a trigger alerts or
    /// kills (once it has been past it for the trigger's `for`).
    #[serde(default)]
    pub kind: LimitKind,
}

/// Ordered by gravity: gate < alert < kill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    #[default]
    Gate,
    Alert,
    Kill,
}

/// Every gate, then every trigger, of `plan`: `(id, title, expression, what crossing it means)`.
pub(super) fn limit_sources(plan: &Plan) -> impl Iterator<Item = (&str, &str, &str, LimitKind)> {
    use crate::plan::TriggerAction;
    let gates = plan.gates.iter().map(|g| {
        (
            g.id.as_str(),
            g.title.as_str(),
            g.expr.as_str(),
            LimitKind::Gate,
        )
    });
    let triggers = plan.triggers.iter().map(|t| {
        let kind = match t.action {
            TriggerAction::Alert => LimitKind::Alert,
            // A step back is a rollback too: drawn as one.
            TriggerAction::Kill | TriggerAction::StepBack => LimitKind::Kill,
        };
        (t.id.as_str(), t.title.as_str(), t.expr.as_str(), kind)
    });
    gates.chain(triggers)
}

/// Limits the plan's gates and triggers set on single series: `p95(latency_ms) <= 700ms`
/// puts a line at 700 on `latency_ms.p95`. Gates come first, then alert triggers, then kill
/// triggers, so the gravest line is drawn on top where two coincide. Comparisons against other
/// metrics (canary vs baseline) and limits on one variant are drawn on the gate's own chart
/// ([`gate_charts`]).
pub fn thresholds(plan: &Plan) -> Vec<Threshold> {
    plain_limits(plan)
        .into_iter()
        .map(|l| Threshold {
            series: series_id(&l.metric, &l.suffix),
            value: l.limit,
            gate: l.source.to_string(),
            kind: l.kind,
        })
        .collect()
}

/// A limit on one plain series, and the read it judges.
struct PlainLimit<'a> {
    source: &'a str,
    kind: LimitKind,
    metric: String,
    aggregate: crate::query::Aggregate,
    suffix: String,
    limit: f64,
}

/// Every `read OP constant` on a plain series (no selector, no offset) of the plan's gates
/// and triggers, gates first, then alerts, then kills, each in plan order.
fn plain_limits(plan: &Plan) -> Vec<PlainLimit<'_>> {
    let mut sources: Vec<_> = limit_sources(plan).collect();
    // Stable: gates, then alerts, then kills, each in plan order.
    sources.sort_by_key(|&(_, _, _, kind)| kind);
    let mut out = Vec::new();
    for (id, _, text, kind) in sources {
        let Ok(e) = expr::parse(text) else {
            continue;
        };
        e.visit(&mut |node| {
            let Kind::Cmp(op, lhs, rhs) = &node.kind else {
                return;
            };
            if matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return;
            }
            let (
                Kind::Metric {
                    metric,
                    aggregate,
                    selector,
                    offset: 0,
                },
                Some(limit),
            ) = (&lhs.kind, constant(rhs))
            else {
                return;
            };
            // A limit on one variant belongs on that gate's own chart, not on the chart of
            // every event.
            if !selector.is_empty() {
                return;
            }
            if let Some(suffix) = series_suffix(aggregate) {
                out.push(PlainLimit {
                    source: id,
                    kind,
                    metric: metric.clone(),
                    aggregate: aggregate.clone(),
                    suffix,
                    limit,
                });
            }
        });
    }
    out
}

/// What a gate judges on a plain series: the same read over the gate's window, at each point
/// of a chart. The 10 s points of `p95` can cross a gate's line while the gate, reading five
/// minutes, passes; drawn beside them, this line crosses exactly when the verdict changes.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReading {
    /// The series in the frame, e.g. `latency_ms.p95@300000`.
    pub id: String,
    /// The plain series it reads, e.g. `latency_ms.p95`.
    pub series: String,
    pub metric: String,
    pub aggregate: crate::query::Aggregate,
    pub window: crate::time::Millis,
    /// What the legend calls it, e.g. `p95 over 5m (gate)`.
    pub label: String,
}

/// Each distinct (series, window) a gate of `plan` judges against a line, in plan order.
pub fn gate_readings(plan: &Plan) -> Vec<GateReading> {
    let mut out: Vec<GateReading> = Vec::new();
    for l in plain_limits(plan) {
        if l.kind != LimitKind::Gate {
            continue;
        }
        let Some(gate) = plan.gates.iter().find(|g| g.id == l.source) else {
            continue;
        };
        let series = series_id(&l.metric, &l.suffix);
        let window = gate.window.0;
        let id = format!("{series}@{window}");
        if out.iter().any(|r| r.id == id) {
            continue;
        }
        out.push(GateReading {
            label: format!("{} over {} (gate)", l.suffix, gate.window.human()),
            id,
            series,
            metric: l.metric,
            aggregate: l.aggregate,
            window,
        });
    }
    out
}

/// The number an expression that reads no metric comes to: `700ms`, or `2 * 300ms`.
pub(super) fn constant(e: &Expr) -> Option<f64> {
    if let Kind::Number(n) = e.kind {
        return Some(n);
    }
    if !e.metrics().is_empty() {
        return None;
    }
    let no_flags = BTreeMap::new();
    let nothing = StepValues {
        reads: &[],
        index: 0,
    };
    let cx = EvalContext {
        source: &nothing,
        window: 0,
        at: 0,
        flags: &no_flags,
        stage: &expr::StageMemory::default(),
        split: None,
    };
    expr::value(e, &cx)
}
