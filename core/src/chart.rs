//! Which charts a plan gets, what each draws, and where its gates' thresholds lie: latency
//! percentiles, mode mix as a stacked area, each ratio (error rate, cache hit) as a line, and a
//! generic chart for anything else, and a chart per relative gate (canary against baseline)
//! with the lines it compares and its moving limit. Pure, so the app only draws what this
//! decides.

mod gate_charts;
pub mod labels;
mod limits;
mod markers;
mod units;

pub use gate_charts::*;
pub use limits::*;
pub use markers::*;
pub use units::*;

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::query::{Aggregate, MetricKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Style {
    /// One line per series.
    Lines,
    /// Shares stacked to 100%.
    StackedArea,
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
    /// What the legend calls each series, in `series` order.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Series drawn dashed as limits that move with time (`1.10 * p95(baseline)`).
    #[serde(default)]
    pub limits: Vec<String>,
}

/// The suffix of the frame series an aggregate reads, when the frame carries one.
pub(super) fn series_suffix(aggregate: &Aggregate) -> Option<String> {
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
        let labels = series
            .iter()
            .map(|id| id.rsplit('.').next().unwrap_or(id).to_string())
            .collect();
        ranked.push((
            rank * 2,
            ChartSpec {
                id: m.id.clone(),
                title,
                style,
                series,
                unit,
                thresholds,
                labels,
                limits: Vec::new(),
            },
        ));
    }
    // Each gate's chart right after the group of charts its first metric belongs to.
    for gate in gate_charts(plan) {
        let rank = ranked
            .iter()
            .find(|(_, c)| Some(&c.id) == gate.metric.as_ref())
            .map_or(u8::MAX, |(rank, _)| rank + 1);
        ranked.push((rank, gate.spec()));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, c)| c).collect()
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
mod tests;
