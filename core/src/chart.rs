//! Which charts a plan gets, what each draws, and where its gates' thresholds lie: latency
//! percentiles, mode mix as a stacked area, each ratio (error rate, cache hit) as a line, and a
//! generic chart for anything else. Pure, so the app only draws what this decides.

use serde::{Deserialize, Serialize};

use crate::expr::{self, CmpOp, Kind};
use crate::plan::Plan;
use crate::query::{Aggregate, MetricKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Style {
    /// One line per series.
    Lines,
    /// Shares stacked to 100%.
    StackedArea,
}

/// A horizontal line at a gate's limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The series it applies to, e.g. `latency_ms.p95`.
    pub series: String,
    /// In the series' own unit (ratios 0..1).
    pub value: f64,
    /// The gate it comes from.
    pub gate: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartSpec {
    /// Stable id (the metric's), used in test ids.
    pub id: String,
    pub title: String,
    pub style: Style,
    /// Series ids in the frame, drawn in this order.
    pub series: Vec<String>,
    /// `ms`, `%` (ratios, drawn as percentages), or the metric's unit.
    pub unit: String,
    pub thresholds: Vec<Threshold>,
}

/// The suffix of the frame series an aggregate reads, when the frame carries one.
fn series_suffix(aggregate: &Aggregate) -> Option<String> {
    match aggregate {
        Aggregate::Quantile(q) => {
            let name = format!("p{}", (q * 100.0).round());
            ["p50", "p95", "p99"]
                .contains(&name.as_str())
                .then_some(name)
        }
        Aggregate::Rate => Some("rate".into()),
        Aggregate::Share(value) => Some(value.clone()),
        Aggregate::Sum => Some("sum".into()),
        Aggregate::Last => Some("last".into()),
        _ => None,
    }
}

/// Limits the plan's gates set on single series: `p95(latency_ms) <= 700ms` puts a line at
/// 700 on `latency_ms.p95`. Comparisons against other metrics (canary vs baseline) have no
/// fixed line and are left out.
pub fn thresholds(plan: &Plan) -> Vec<Threshold> {
    let mut out = Vec::new();
    for gate in &plan.gates {
        let Ok(e) = expr::parse(&gate.expr) else {
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
                    metric, aggregate, ..
                },
                Kind::Number(limit),
            ) = (&lhs.kind, &rhs.kind)
            else {
                return;
            };
            if let Some(suffix) = series_suffix(aggregate) {
                out.push(Threshold {
                    series: format!("{metric}.{suffix}"),
                    value: *limit,
                    gate: gate.id.clone(),
                });
            }
        });
    }
    out
}

/// The charts for `plan`, latency first, in the order a war room reads them.
pub fn charts(plan: &Plan) -> Vec<ChartSpec> {
    let limits = thresholds(plan);
    let mut ranked: Vec<(u8, ChartSpec)> = Vec::new();
    for m in &plan.metrics {
        let unit = m.unit.clone().unwrap_or_default();
        let (rank, title, style, series, unit) = match m.kind {
            MetricKind::Distribution => (
                if unit == "ms" { 0 } else { 4 },
                if unit == "ms" {
                    format!("{} (p50, p95, p99)", m.title)
                } else {
                    format!("{} (p50, p95)", m.title)
                },
                Style::Lines,
                if unit == "ms" {
                    vec!["p50", "p95", "p99"]
                } else {
                    vec!["p50", "p95"]
                }
                .into_iter()
                .map(|s| format!("{}.{s}", m.id))
                .collect(),
                unit,
            ),
            MetricKind::Category => (
                1,
                format!("{} mix", m.title),
                Style::StackedArea,
                m.values.iter().map(|v| format!("{}.{v}", m.id)).collect(),
                "%".to_string(),
            ),
            MetricKind::Ratio => (
                if m.id.contains("error") { 2 } else { 3 },
                m.title.clone(),
                Style::Lines,
                vec![format!("{}.rate", m.id)],
                "%".to_string(),
            ),
            MetricKind::Counter => (
                5,
                format!("{} per 10 s", m.title),
                Style::Lines,
                vec![format!("{}.sum", m.id)],
                "count".to_string(),
            ),
            MetricKind::Gauge => (
                5,
                m.title.clone(),
                Style::Lines,
                vec![format!("{}.last", m.id)],
                unit,
            ),
        };
        let thresholds = limits
            .iter()
            .filter(|t| series.contains(&t.series))
            .cloned()
            .collect();
        ranked.push((
            rank,
            ChartSpec {
                id: m.id.clone(),
                title,
                style,
                series,
                unit,
                thresholds,
            },
        ));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, c)| c).collect()
}

/// A labelled moment on every chart's time axis: a stage change, a kill, an override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub at: crate::time::Millis,
    pub label: String,
    /// Kills (by a person or a trigger) are drawn as alarms.
    pub alarm: bool,
}

/// The marker an audit record puts on the charts, if it is one that changes what the charts
/// mean (checks and approvals do not).
pub fn marker(record: &crate::rollout::AuditRecord) -> Option<Marker> {
    use crate::rollout::Action;
    let stage = || record.after.stage.clone().unwrap_or_default();
    let label = match &record.action {
        Action::Start => format!("start {}", stage()),
        Action::Progress if record.after.phase == crate::rollout::Phase::Completed => {
            "completed".to_string()
        }
        Action::Progress => format!("to {}", stage()),
        Action::Pause => "pause".to_string(),
        Action::Resume => "resume".to_string(),
        Action::Kill if record.actor.role == crate::role::Role::System => {
            format!("kill by {}", record.actor.name)
        }
        Action::Kill => "kill".to_string(),
        Action::Override { gate } => format!("override {gate}"),
        Action::Check { .. } | Action::Uncheck { .. } | Action::Approve => return None,
    };
    Some(Marker {
        at: record.at,
        label,
        alarm: record.action == Action::Kill,
    })
}

/// The three charts a wall screen shows: latency, the mode mix, the error rate (whichever the
/// plan has), filled up with the next charts in order.
pub fn wall(plan: &Plan) -> Vec<ChartSpec> {
    let all = charts(plan);
    let picks = [
        all.iter().position(|c| c.unit == "ms"),
        all.iter().position(|c| c.style == Style::StackedArea),
        all.iter().position(|c| c.id.contains("error")),
    ];
    let mut chosen: Vec<usize> = picks.into_iter().flatten().collect();
    for i in 0..all.len() {
        if chosen.len() >= 3 {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|i| all[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spiralogic() -> Plan {
        let text = include_str!("../../plans/spiralogic.toml");
        crate::plan::parse("spiralogic.toml", text).unwrap()
    }

    #[test]
    fn every_metric_gets_a_chart_latency_first_and_the_mix_stacked() {
        let charts = charts(&spiralogic());
        let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "latency_ms",
                "first_token_ms",
                "mode",
                "error",
                "cache_hit",
                "quality"
            ]
        );
        let mode = &charts[2];
        assert_eq!(mode.style, Style::StackedArea);
        assert_eq!(mode.series, ["mode.full", "mode.lite", "mode.fallback"]);
        assert_eq!(mode.unit, "%");
        assert_eq!(
            charts[0].series,
            ["latency_ms.p50", "latency_ms.p95", "latency_ms.p99"]
        );
    }

    #[test]
    fn stage_changes_kills_and_overrides_mark_the_charts_checks_do_not() {
        use crate::rollout::{Action, Actor, AuditRecord, Phase, StateSummary};
        let summary = |phase, stage: Option<&str>| StateSummary {
            phase,
            stage: stage.map(str::to_string),
            traffic: 10.0,
        };
        let record = |action, role| AuditRecord {
            at: 42,
            actor: Actor {
                name: "trigger:error-spike".into(),
                role,
            },
            action,
            reason: None,
            before: summary(Phase::Running, Some("canary")),
            after: summary(Phase::Running, Some("beta")),
        };
        use crate::role::Role;
        let progress = marker(&record(Action::Progress, Role::Operator)).unwrap();
        assert_eq!(
            (progress.at, progress.label.as_str(), progress.alarm),
            (42, "to beta", false)
        );
        let kill = marker(&record(Action::Kill, Role::System)).unwrap();
        assert_eq!(
            (kill.label.as_str(), kill.alarm),
            ("kill by trigger:error-spike", true)
        );
        let check = Action::Check {
            list: "l".into(),
            item: "i".into(),
        };
        assert_eq!(marker(&record(check, Role::Operator)), None);
        assert_eq!(marker(&record(Action::Approve, Role::Lead)), None);
    }

    #[test]
    fn the_wall_shows_latency_mix_and_errors() {
        let ids: Vec<String> = wall(&spiralogic()).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["latency_ms", "mode", "error"]);
    }

    #[test]
    fn gate_limits_become_threshold_lines_on_the_series_they_judge() {
        let charts = charts(&spiralogic());
        let latency = &charts[0];
        let lines: Vec<(&str, f64)> = latency
            .thresholds
            .iter()
            .map(|t| (t.series.as_str(), t.value))
            .collect();
        assert_eq!(
            lines,
            [("latency_ms.p95", 700.0), ("latency_ms.p50", 350.0)]
        );
        let mode = &charts[2];
        assert_eq!(mode.thresholds[0].series, "mode.fallback");
        assert_eq!(mode.thresholds[0].value, 0.03);
        let cache = &charts[4];
        assert_eq!(cache.thresholds[0].value, 0.4);
        // `mean(quality{variant="canary"}) >= 0.95 * mean(quality{variant="baseline"})` has
        // no fixed line.
        assert!(charts[5].thresholds.is_empty());
    }
}
