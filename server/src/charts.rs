//! Chart series for a rollout, read from its metric store: quantiles of distributions, rates
//! of ratios, shares of categories, sums of counters, levels of gauges.

use cutover_core::plan::Plan;
use cutover_core::query::{Aggregate, MetricKind, Selector};
use cutover_core::series::{Frame, Series};
use cutover_core::time::{MINUTE, Millis, SECOND};
use cutover_core::window::MetricStore;

/// How much history a live frame carries, and at what resolution.
pub const LIVE_RANGE: Millis = 15 * MINUTE;
pub const LIVE_STEP: Millis = 10 * SECOND;

/// Every chart series of `plan` over `range` ending at `now`.
pub fn frame(plan: &Plan, store: &MetricStore, now: Millis, range: Millis, step: Millis) -> Frame {
    let (from, to) = (now - range + step, now);
    let all = Selector::new();
    let mut series = Vec::new();
    let mut push = |metric: &str, suffix: &str, label: String, unit: &str, aggregate: Aggregate| {
        series.push(Series {
            id: format!("{metric}.{suffix}"),
            label,
            unit: unit.to_string(),
            points: store.series(metric, &all, &aggregate, from, to, step),
        });
    };
    for m in &plan.metrics {
        let unit = m.unit.clone().unwrap_or_default();
        match m.kind {
            MetricKind::Distribution => {
                push(
                    &m.id,
                    "count",
                    format!("{} events", m.title),
                    "count",
                    Aggregate::Count,
                );
                for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                    push(
                        &m.id,
                        name,
                        format!("{name} {}", m.title),
                        &unit,
                        Aggregate::Quantile(q),
                    );
                }
            }
            MetricKind::Ratio => push(&m.id, "rate", m.title.clone(), "ratio", Aggregate::Rate),
            MetricKind::Counter => push(&m.id, "sum", m.title.clone(), "count", Aggregate::Sum),
            MetricKind::Gauge => push(&m.id, "last", m.title.clone(), &unit, Aggregate::Last),
            MetricKind::Category => {
                for value in &m.values {
                    push(
                        &m.id,
                        value,
                        value.clone(),
                        "ratio",
                        Aggregate::Share(value.clone()),
                    );
                }
            }
        }
    }
    Frame {
        rollout: plan.id.clone(),
        at: now,
        step,
        series,
    }
}
