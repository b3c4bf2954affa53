//! The names of a frame's series, written once: the server's frames, the charts that draw
//! them, the thresholds on them and the app all read series ids through here.

use crate::plan::Plan;
use crate::query::{Aggregate, MetricKind};
use crate::unit::Unit;

/// The id of the series that draws `part` (`p95`, `rate`, a category value) of `metric`.
pub fn series_id(metric: &str, part: &str) -> String {
    format!("{metric}.{part}")
}

/// The part of a series id after its metric: `p95` of `latency_ms.p95`.
pub fn series_part(id: &str) -> &str {
    id.rsplit('.').next().unwrap_or(id)
}

/// Whether series `id` is what a gate judges over its window (`latency_ms.p95@300000`, see
/// `GateReading`), drawn bolder than the 10 s points beside it.
pub fn is_gate_reading(id: &str) -> bool {
    id.contains('@')
}

/// The part of the frame series an aggregate reads, when the frame carries one.
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

/// One series a frame carries for a plan metric, and the read that fills it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    pub id: String,
    /// What a legend calls it, e.g. `p95 Latency`.
    pub label: String,
    pub unit: Unit,
    pub metric: String,
    pub aggregate: Aggregate,
}

/// Every metric series of `plan`'s frames, in plan order: a distribution's event count and
/// p50/p95/p99, a ratio's rate, a counter's sum, a gauge's last value, a category's shares.
pub fn metric_series(plan: &Plan) -> Vec<SeriesSpec> {
    let mut out = Vec::new();
    for m in &plan.metrics {
        let mut push = |part: &str, label: String, unit: Unit, aggregate: Aggregate| {
            out.push(SeriesSpec {
                id: series_id(&m.id, part),
                label,
                unit,
                metric: m.id.clone(),
                aggregate,
            });
        };
        match m.kind {
            MetricKind::Distribution => {
                let events = format!("{} events", m.title);
                push("count", events, Unit::Count, Aggregate::Count);
                for (part, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
                    let label = format!("{part} {}", m.title);
                    push(part, label, m.unit(), Aggregate::Quantile(q));
                }
            }
            MetricKind::Ratio => push("rate", m.title.clone(), Unit::Ratio, Aggregate::Rate),
            MetricKind::Counter => push("sum", m.title.clone(), Unit::Count, Aggregate::Sum),
            MetricKind::Gauge => push("last", m.title.clone(), m.unit(), Aggregate::Last),
            MetricKind::Category => {
                for value in &m.values {
                    let share = Aggregate::Share(value.clone());
                    push(value, value.clone(), Unit::Ratio, share);
                }
            }
        }
    }
    out
}
