//! The contract between the expression language and the metric store: what a gate can ask
//! of the metrics (an aggregate of one metric, filtered by labels, over a window ending at a
//! time) and what kinds of metric exist. Either side can be replaced without touching the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// What a metric's events carry, and so which aggregates make sense over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A number per event (latency); quantiles, mean, max, sum, count.
    Distribution,
    /// A yes/no per event (cache hit, error); `rate` is the share of yes.
    Ratio,
    /// One of a fixed set of values per event (mode = full|lite|fallback); `share`.
    Category,
    /// A count to add up (requests, rate-limited queries); `sum`, `count`.
    Counter,
    /// A level sampled over time (active contexts, queue depth); last, mean, max.
    Gauge,
}

/// Label filter: every pair must match the event's labels exactly. Empty matches everything.
pub type Selector = BTreeMap<String, String>;

/// One aggregate over a metric's events in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Quantile in 0..=1 (p95 = 0.95) of a distribution or gauge.
    Quantile(f64),
    /// Share of `true` among a ratio metric's events, 0..=1.
    Rate,
    /// Share of events whose category equals the value, 0..=1.
    Share(String),
    Mean,
    /// Number of events.
    Count,
    Sum,
    Max,
    Min,
    /// Latest value of a gauge.
    Last,
    /// Events per second over the window (for a counter, its sum per second).
    PerSecond,
}

impl Aggregate {
    /// The function's name in the expression language: `p95`, `rate`, `share`, `mean`.
    pub fn name(&self) -> String {
        match self {
            Aggregate::Quantile(q) => {
                // 0.95 -> p95, 0.999 -> p999, 0.05 -> p5.
                let digits = format!("{q}");
                let fraction = digits.trim_start_matches("0.");
                if fraction.len() == 1 {
                    format!("p{}", fraction.parse::<u32>().unwrap_or(0) * 10)
                } else {
                    format!("p{}", fraction.trim_start_matches('0'))
                }
            }
            Aggregate::Rate => "rate".into(),
            Aggregate::Share(_) => "share".into(),
            Aggregate::Mean => "mean".into(),
            Aggregate::Count => "count".into(),
            Aggregate::Sum => "sum".into(),
            Aggregate::Max => "max".into(),
            Aggregate::Min => "min".into(),
            Aggregate::Last => "last".into(),
            Aggregate::PerSecond => "per_second".into(),
        }
    }
}

/// Where expression evaluation gets numbers. `None` means no samples in the window: the caller
/// must treat it as "no data", which never passes a gate.
pub trait MetricSource {
    fn aggregate(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        window: Millis,
        at: Millis,
    ) -> Option<f64>;

    /// The values label `label` takes among `metric`'s series matching `selector` that have
    /// samples in the window: what `any(label, ...)` and `all(label, ...)` range over.
    fn label_values(
        &self,
        _metric: &str,
        _selector: &Selector,
        _label: &str,
        _window: Millis,
        _at: Millis,
    ) -> Vec<String> {
        Vec::new()
    }

    /// The events of `metric`'s series matching `selector` in the window, counted and
    /// sketched together: what a sequential comparison reads. `None` when this source cannot
    /// say (Prometheus-backed metrics are not kept event by event).
    fn tally(
        &self,
        _metric: &str,
        _selector: &Selector,
        _window: Millis,
        _at: Millis,
    ) -> Option<crate::sequential::Tally> {
        None
    }

    /// Value of a raw PromQL expression at `at`, for sources backed by Prometheus. Sources
    /// that cannot answer PromQL return `None` (no data), which fails closed.
    fn promql(&self, _query: &str, _at: Millis) -> Result<Option<f64>, String> {
        Err("this metric source does not answer PromQL".to_string())
    }

    /// Why `metric` cannot be trusted now (its Prometheus query failed, say), if it cannot:
    /// expressions over it are then "no data" with this reason, whatever samples it holds.
    fn unavailable(&self, _metric: &str) -> Option<String> {
        None
    }
}
