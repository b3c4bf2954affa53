//! Chart series for a rollout, read from its metric store: quantiles of distributions, rates
//! of ratios, shares of categories, sums of counters, levels of gauges, and the lines of each
//! gate that compares variants.

use cutover_core::chart::{Better, ComparisonChart, GateChart, GateReading, better, metric_series};
use cutover_core::plan::Plan;
use cutover_core::query::{Aggregate, MetricKind, MetricSource, Selector};
use cutover_core::series::{Frame, Series};
use cutover_core::snapshot::{Kpi, Trend};
use cutover_core::time::{MINUTE, Millis, SECOND};
use cutover_core::unit::Unit;
use cutover_core::window::MetricStore;

/// How much history a live frame carries, and at what resolution.
pub const LIVE_RANGE: Millis = 15 * MINUTE;
pub const LIVE_STEP: Millis = 10 * SECOND;

/// Every chart series of `plan` over `range` ending at `now`.
/// `gate_charts` is [`cutover_core::chart::gate_charts`] of `plan`, worked out once per
/// rollout rather than on every tick.
pub fn frame(
    plan: &Plan,
    (gate_charts, comparison_charts, readings): (&[GateChart], &[ComparisonChart], &[GateReading]),
    store: &MetricStore,
    entered_at: Option<Millis>,
    (now, range, step): (Millis, Millis, Millis),
) -> Frame {
    let (from, to) = (now - range + step, now);
    let all = Selector::new();
    let specs = metric_series(plan);
    let mut series: Vec<Series> = specs
        .iter()
        .map(|s| Series {
            points: store.series(&s.metric, &all, &s.aggregate, from, to, step),
            id: s.id.clone(),
            label: s.label.clone(),
            unit: s.unit.clone(),
        })
        .collect();
    // What each gate judges, over its own window: the line its verdict follows. Not where a
    // point is wider than the window (a week in 30 min points of a 5 min gate): the buckets
    // there are wider than the window, and the line would swing on which one it caught.
    for r in readings.iter().filter(|r| r.window >= step) {
        series.push(Series {
            points: store.windowed(&r.metric, &all, &r.aggregate, r.window, (from, to, step)),
            label: r.label.clone(),
            unit: specs
                .iter()
                .find(|s| s.id == r.series)
                .map_or(Unit::Count, |s| s.unit.clone()),
            id: r.id.clone(),
        });
    }
    // Canary against baseline, and other comparisons no fixed threshold can show.
    for chart in gate_charts {
        series.extend(cutover_core::chart::gate_series(
            chart, store, from, to, step,
        ));
    }
    // Each comparison since the stage was entered: its interval narrowing toward a verdict.
    for chart in comparison_charts {
        series.extend(cutover_core::chart::comparison_series(
            chart, store, entered_at, from, to, step,
        ));
    }
    Frame {
        rollout: plan.id.clone(),
        at: now,
        step,
        series,
    }
}

/// Window the headline numbers summarise.
pub const KPI_WINDOW: Millis = 5 * MINUTE;
/// At most this many headline numbers: one status line must stay one line.
pub const MAX_KPIS: usize = 4;

/// The headline numbers of a rollout over the last [`KPI_WINDOW`]: p95 of the first latency
/// distribution, failure rates, success rates (which way is better: `chart::better`), the share of the last (degraded) value of each
/// category (e.g. `fallback`), then other ratios, up to [`MAX_KPIS`].
/// The headline metric (p95 of the first latency in ms, else the first ratio's rate) minute
/// by minute over the last 15 minutes: what an overview card draws as a sparkline.
pub fn trend(plan: &Plan, store: &MetricStore, now: Millis) -> Option<Trend> {
    let (metric, aggregate, label) = plan
        .metrics
        .iter()
        .find(|m| m.kind == MetricKind::Distribution && m.unit() == Unit::Ms)
        .map(|m| (m, Aggregate::Quantile(0.95), format!("p95 {}", m.title)))
        .or_else(|| {
            plan.metrics
                .iter()
                .find(|m| m.kind == MetricKind::Ratio)
                .map(|m| (m, Aggregate::Rate, m.title.clone()))
        })?;
    let all = Selector::new();
    let values = (0..15)
        .rev()
        .map(|i| store.aggregate(&metric.id, &all, &aggregate, MINUTE, now - i * MINUTE))
        .collect();
    Some(Trend { label, values })
}

pub fn kpis(plan: &Plan, store: &MetricStore, now: Millis) -> Vec<Kpi> {
    let all = Selector::new();
    let value = |metric: &str, aggregate: Aggregate| {
        store.aggregate(metric, &all, &aggregate, KPI_WINDOW, now)
    };
    let mut ranked: Vec<(u8, Kpi)> = Vec::new();
    if let Some(m) = plan
        .metrics
        .iter()
        .find(|m| m.kind == MetricKind::Distribution && m.unit() == Unit::Ms)
    {
        ranked.push((
            0,
            Kpi {
                label: "p95".into(),
                value: value(&m.id, Aggregate::Quantile(0.95)),
                unit: Unit::Ms,
            },
        ));
    }
    for m in &plan.metrics {
        let rank = match (m.kind, better(plan, &m.id)) {
            (MetricKind::Ratio, Some(Better::Lower)) => 1,
            (MetricKind::Ratio, Some(Better::Higher)) => 2,
            (MetricKind::Category, _) => 3,
            (MetricKind::Ratio, None) => 4,
            _ => continue,
        };
        let kpi = match m.values.last() {
            Some(last) if m.kind == MetricKind::Category => Kpi {
                label: last.clone(),
                value: value(&m.id, Aggregate::Share(last.clone())),
                unit: Unit::Ratio,
            },
            _ => Kpi {
                label: m.id.clone(),
                value: value(&m.id, Aggregate::Rate),
                unit: Unit::Ratio,
            },
        };
        ranked.push((rank, kpi));
    }
    // Stable: plan order within a rank.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().take(MAX_KPIS).map(|(_, k)| k).collect()
}
