//! Which charts a plan gets, what each draws, and where its gates' thresholds lie: latency
//! percentiles, mode mix as a stacked area, each ratio (error rate, cache hit) as a line, and a
//! generic chart for anything else, and a chart per relative gate (canary against baseline)
//! with the lines it compares and its moving limit. Pure, so the app only draws what this
//! decides.

mod comparisons;
mod direction;
mod gate_charts;
pub mod labels;
mod limits;
mod markers;
mod naming;
mod units;

pub use comparisons::*;
pub use direction::*;
pub use gate_charts::*;
pub use limits::*;
pub use markers::*;
pub use naming::*;
pub use units::*;

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::query::MetricKind;
use crate::unit::Unit;

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
    /// What the values are in (a ratio is drawn as percentages).
    pub unit: Unit,
    pub thresholds: Vec<Threshold>,
    /// What the legend calls each series, in `series` order.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Series drawn dashed as limits that move with time (`1.10 * p95(baseline)`).
    #[serde(default)]
    pub limits: Vec<String>,
}

/// The charts for `plan`, latency first, in the order a war room reads them.
pub fn charts(plan: &Plan) -> Vec<ChartSpec> {
    let limits = thresholds(plan);
    let readings = gate_readings(plan);
    let mut ranked: Vec<(u8, ChartSpec)> = Vec::new();
    for m in &plan.metrics {
        let unit = m.unit();
        let (rank, title, style, series, unit) = match m.kind {
            MetricKind::Distribution => (
                if unit == Unit::Ms { 0 } else { 4 },
                if unit == Unit::Ms {
                    format!("{} (p50, p95, p99)", m.title)
                } else {
                    format!("{} (p50, p95)", m.title)
                },
                Style::Lines,
                if unit == Unit::Ms {
                    vec!["p50", "p95", "p99"]
                } else {
                    vec!["p50", "p95"]
                }
                .into_iter()
                .map(|s| series_id(&m.id, s))
                .collect(),
                unit,
            ),
            MetricKind::Category => (
                1,
                format!("{} mix", m.title),
                Style::StackedArea,
                m.values.iter().map(|v| series_id(&m.id, v)).collect(),
                Unit::Ratio,
            ),
            MetricKind::Ratio => (
                // Failure rates before the other ratios.
                if better(plan, &m.id) == Some(Better::Lower) {
                    2
                } else {
                    3
                },
                m.title.clone(),
                Style::Lines,
                vec![series_id(&m.id, "rate")],
                Unit::Ratio,
            ),
            MetricKind::Counter => (
                5,
                format!("{} per 10 s", m.title),
                Style::Lines,
                vec![series_id(&m.id, "sum")],
                Unit::Count,
            ),
            MetricKind::Gauge => (
                5,
                m.title.clone(),
                Style::Lines,
                vec![series_id(&m.id, "last")],
                unit,
            ),
        };
        let thresholds = limits
            .iter()
            .filter(|t| series.contains(&t.series))
            .cloned()
            .collect();
        let mut labels: Vec<String> = series
            .iter()
            .map(|id| series_part(id).to_string())
            .collect();
        // What each gate on these series judges, over its window: the line its verdict
        // follows, beside the 10 s points.
        // (Not on a stacked mix: every series there is a share of the stack.)
        let judged: Vec<&GateReading> = readings
            .iter()
            .filter(|r| style == Style::Lines && series.contains(&r.series))
            .collect();
        let mut series = series;
        for r in judged {
            series.push(r.id.clone());
            labels.push(r.label.clone());
        }
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
    // Each comparison's interval over the stage right after its gate's chart.
    for c in comparison_charts(plan) {
        let rank = ranked
            .iter()
            .find(|(_, s)| Some(&s.id) == Some(&c.canary.metric))
            .map_or(u8::MAX, |(rank, _)| rank + 1);
        ranked.push((rank, c.spec()));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, c)| c).collect()
}

/// The three charts a wall screen shows: latency, the mode mix, the error rate (whichever the
/// plan has), filled up with the next charts in order.
pub fn wall(plan: &Plan) -> Vec<ChartSpec> {
    const WALL_CHARTS: usize = 3;
    let all = charts(plan);
    let picks = [
        all.iter().position(|c| c.unit == Unit::Ms),
        all.iter().position(|c| c.style == Style::StackedArea),
        // The first failure rate: the chart of a ratio metric that is better lower.
        all.iter().position(|c| {
            plan.metrics
                .iter()
                .any(|m| m.id == c.id && m.kind == MetricKind::Ratio)
                && better(plan, &c.id) == Some(Better::Lower)
        }),
    ];
    let mut chosen: Vec<usize> = picks.into_iter().flatten().collect();
    chosen.sort_unstable();
    for i in 0..all.len() {
        if chosen.len() >= WALL_CHARTS {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.into_iter().map(|i| all[i].clone()).collect()
}

/// The value axis of a line chart over `values` with lines at `limits` (display units, e.g.
/// percent): every limit inside it, zero at the bottom for data that spans a good part of its
/// range, but zoomed where all of it sits in a narrow band far from zero (a 99.9% limit under
/// 99.95% availability is a flat line on a 0-100% axis: zoomed, the gap between them shows).
/// Percentages never go past 100% (or below -100%).
pub fn value_axis(
    values: impl IntoIterator<Item = f64>,
    limits: &[f64],
    percent: bool,
) -> (f64, f64) {
    let all: Vec<f64> = values
        .into_iter()
        .chain(limits.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (bottom, top) = if all.is_empty() {
        (0.0, 1.0)
    } else if lo >= 0.0 && hi > 0.0 && hi - lo < 0.1 * hi {
        // A narrow band far from zero: zoom on it, a quarter of the band (at least a
        // thousandth of the value) either side.
        let pad = ((hi - lo) * 0.25).max(hi * 0.001);
        (lo - pad, hi + pad)
    } else {
        // Zero at the bottom unless something is below it (a comparison's difference).
        (lo.min(0.0) * 1.15, (hi.max(0.0) * 1.15).max(1.0))
    };
    if percent {
        (bottom.max(-100.0), top.min(100.0).max(bottom + 1e-6))
    } else {
        (bottom, top)
    }
}

#[cfg(test)]
mod tests;
