//! Simulated traffic for the demo: events for every metric a plan declares, aimed to keep the
//! plan's gates comfortably green (latencies log-normal under their quantile limits, ratios
//! inside their bounds, categories within their shares), with the label values the gates
//! select on (canary/baseline/shadow). Fed through the same validation as pushed events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cutover_core::expr::{self, ArithOp, CmpOp, Expr, Kind};
use cutover_core::plan::{Metric, Plan};
use cutover_core::query::{Aggregate, MetricKind};
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde_json::{Map, Value, json};

use crate::ingest;
use crate::state::{AppState, now};

/// Spread of simulated latencies (log-normal sigma).
const SIGMA: f64 = 0.45;
/// Spread of other distributions (scores, coverage): they move little between events.
const SCORE_SIGMA: f64 = 0.05;

/// What to aim each metric at, derived from the plan's gates.
#[derive(Debug, Default)]
pub struct Targets {
    median: BTreeMap<String, f64>,
    /// Ratio metrics: the (lower, upper) bounds their gates set.
    bounds: BTreeMap<String, (Option<f64>, Option<f64>)>,
    shares: BTreeMap<String, BTreeMap<String, f64>>,
    per_event: BTreeMap<String, f64>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// z-score of a quantile of the standard normal, for the quantiles plans use.
fn z(q: f64) -> f64 {
    match q {
        q if q >= 0.999 => 3.09,
        q if q >= 0.99 => 2.33,
        q if q >= 0.95 => 1.645,
        q if q >= 0.9 => 1.28,
        q if q >= 0.75 => 0.674,
        _ => 0.0,
    }
}

fn number(e: &Expr) -> Option<f64> {
    match &e.kind {
        Kind::Number(n) => Some(*n),
        Kind::Arith(ArithOp::Mul, a, b) => Some(number(a)? * number(b)?),
        _ => None,
    }
}

impl Targets {
    pub fn from_plan(plan: &Plan) -> Targets {
        let mut t = Targets::default();
        let gates = plan.gates.iter().map(|g| (&g.expr, true));
        let triggers = plan.triggers.iter().map(|t| (&t.expr, false));
        for (text, is_gate) in gates.chain(triggers) {
            let Ok(e) = expr::parse(text) else { continue };
            for read in e.metrics() {
                for (k, v) in read.selector {
                    t.labels.entry(k).or_default().insert(v);
                }
            }
            // Gates say what healthy is; a trigger says what an incident is, so healthy is
            // its opposite. Gates come first and win where both speak.
            t.aim(&e, !is_gate);
        }
        t
    }

    /// Learns targets from a condition that should hold (or, `negated`, should not).
    fn aim(&mut self, e: &Expr, negated: bool) {
        match &e.kind {
            Kind::Logic(_, a, b) => {
                self.aim(a, negated);
                self.aim(b, negated);
            }
            // The guard is a flag, not a target.
            Kind::When(a, _) => self.aim(a, negated),
            Kind::Cmp(op, lhs, rhs) => {
                let (below, above) = (
                    matches!(op, CmpOp::Le | CmpOp::Lt),
                    matches!(op, CmpOp::Ge | CmpOp::Gt),
                );
                let (below, above) = if negated {
                    (above, below)
                } else {
                    (below, above)
                };
                let Some(limit) = number(rhs) else { return };
                match &lhs.kind {
                    Kind::Metric {
                        aggregate: Aggregate::Quantile(q),
                        metric,
                        ..
                    } if below => {
                        let median = 0.6 * limit / (SIGMA * z(*q)).exp();
                        let slot = self.median.entry(metric.clone()).or_insert(median);
                        *slot = slot.min(median);
                    }
                    Kind::Metric {
                        aggregate: Aggregate::Mean | Aggregate::Last | Aggregate::Max,
                        metric,
                        ..
                    } => {
                        let v = if above {
                            limit * 1.2 + 5.0
                        } else if below {
                            limit * 0.5
                        } else {
                            limit
                        };
                        self.median.entry(metric.clone()).or_insert(v);
                    }
                    Kind::Metric {
                        aggregate: Aggregate::Rate,
                        metric,
                        ..
                    } => {
                        let bounds = self.bounds.entry(metric.clone()).or_default();
                        if below {
                            bounds.1 = Some(bounds.1.map_or(limit, |b| b.min(limit)));
                        } else if above {
                            bounds.0 = Some(bounds.0.map_or(limit, |b| b.max(limit)));
                        } else if *op == CmpOp::Eq && !negated {
                            *bounds = (Some(limit), Some(limit));
                        }
                    }
                    Kind::Metric {
                        aggregate: Aggregate::Share(value),
                        metric,
                        ..
                    } if below => {
                        let share = self.shares.entry(metric.clone()).or_default();
                        let cap = share.entry(value.clone()).or_insert(0.4 * limit);
                        *cap = cap.min(0.4 * limit);
                    }
                    Kind::Arith(ArithOp::Div, a, b) => {
                        if let (
                            Kind::Metric { metric: part, .. },
                            Kind::Metric { metric: whole, .. },
                        ) = (&a.kind, &b.kind)
                        {
                            let ratio = if above {
                                limit + 0.6 * (1.0 - limit)
                            } else {
                                0.4 * limit
                            };
                            self.per_event.insert(whole.clone(), 10.0);
                            self.per_event.entry(part.clone()).or_insert(10.0 * ratio);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn value(&self, metric: &Metric, rng: &mut impl Rng) -> Value {
        match metric.kind {
            MetricKind::Distribution => {
                let default = if metric.unit.as_deref() == Some("ms") {
                    240.0
                } else {
                    0.9
                };
                let median = self
                    .median
                    .get(&metric.id)
                    .copied()
                    .unwrap_or(default)
                    .max(1e-6);
                let dist = LogNormal::new(
                    median.ln(),
                    if metric.unit.as_deref() == Some("ms") {
                        SIGMA
                    } else {
                        SCORE_SIGMA
                    },
                )
                .unwrap_or_else(|_| LogNormal::new(0.0, 1.0).unwrap());
                let v: f64 = dist.sample(rng);
                json!((v * 1000.0).round() / 1000.0)
            }
            MetricKind::Gauge => {
                let level = self.median.get(&metric.id).copied().unwrap_or(1.0);
                json!((level * rng.random_range(1.0..1.1) * 10.0).round() / 10.0)
            }
            MetricKind::Counter => {
                let mean = self.per_event.get(&metric.id).copied().unwrap_or(2.0);
                json!((mean * rng.random_range(0.9..1.1) * 100.0).round() / 100.0)
            }
            MetricKind::Ratio => {
                let p = match self.bounds.get(&metric.id) {
                    Some((Some(lo), Some(hi))) => (lo + hi) / 2.0,
                    Some((None, Some(hi))) => 0.4 * hi,
                    Some((Some(lo), None)) => 1.0 - 0.4 * (1.0 - lo),
                    _ if metric.id.contains("error") => 0.004,
                    _ => 0.5,
                };
                json!(rng.random_bool(p.clamp(0.0, 1.0)))
            }
            MetricKind::Category => {
                let capped = self.shares.get(&metric.id);
                let fixed: f64 = capped.map_or(0.0, |c| c.values().sum());
                let free: Vec<&String> = metric
                    .values
                    .iter()
                    .filter(|v| capped.is_none_or(|c| !c.contains_key(*v)))
                    .collect();
                let roll: f64 = rng.random();
                let mut acc = 0.0;
                for v in &metric.values {
                    acc += match capped.and_then(|c| c.get(v)) {
                        Some(share) => *share,
                        // The first free value takes most of the rest, like the runbooks' 70/25.
                        None if Some(&v) == free.first() => (1.0 - fixed) * 0.72,
                        None => (1.0 - fixed) * 0.28 / (free.len().max(2) - 1) as f64,
                    };
                    if roll < acc {
                        return json!(v);
                    }
                }
                json!(metric.values.first())
            }
        }
    }

    /// One event: a value for every metric, and one value for each label the gates select on.
    pub fn event(&self, plan: &Plan, rng: &mut impl Rng) -> Value {
        let values: Map<String, Value> = plan
            .metrics
            .iter()
            .map(|m| (m.id.clone(), self.value(m, rng)))
            .collect();
        let labels: Map<String, Value> = self
            .labels
            .iter()
            .filter_map(|(k, vs)| {
                let pick = vs.iter().nth(rng.random_range(0..vs.len().max(1)))?;
                Some((k.clone(), json!(pick)))
            })
            .collect();
        json!({ "labels": labels, "values": values })
    }
}

/// Feeds every rollout `rate` events per second until the task is dropped.
pub async fn run(state: AppState, rate: u32) {
    let targets: BTreeMap<String, Targets> = state
        .rollouts
        .iter()
        .map(|(id, r)| (id.clone(), Targets::from_plan(&r.plan)))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let per_tick = (rate / 5).max(1);
    loop {
        tick.tick().await;
        let mut rng = rand::rng();
        for (id, rollout) in state.rollouts.iter() {
            let Some(t) = targets.get(id) else { continue };
            let body: String = (0..per_tick)
                .map(|_| t.event(&rollout.plan, &mut rng).to_string() + "\n")
                .collect();
            let at = now();
            if let Ok((records, mut report)) = ingest::parse_batch(&rollout.plan, &body, at) {
                rollout.record(records, at, &mut report);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cutover_core::gates::{Compiled, Memory, Verdict, evaluate};
    use cutover_core::time::{MINUTE, SECOND};
    use cutover_core::window::{MetricStore, StoreConfig};

    use super::*;
    use crate::ingest::IngestReport;

    /// Five minutes of simulated traffic keep every gate of every example plan green, in every
    /// stage: the demo starts healthy.
    #[test]
    fn simulated_traffic_keeps_every_example_gate_green() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans");
        let mut rng = rand::rng();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let plan = cutover_core::plan::parse("p.toml", &text).unwrap();
            let targets = Targets::from_plan(&plan);
            let mut store = MetricStore::new(
                StoreConfig::default(),
                plan.metrics.iter().map(|m| (m.id.clone(), m.kind)),
            );
            let end = 1_800_000_000_000;
            for i in 0..6000i64 {
                let at = end - 5 * MINUTE + i * 50;
                let body = targets.event(&plan, &mut rng).to_string();
                let (records, report) = ingest::parse_batch(&plan, &body, at).unwrap();
                assert_eq!(report.accepted, 1, "{}: {:?}", plan.id, report.rejected);
                let mut report = IngestReport {
                    accepted: 1,
                    rejected: vec![],
                };
                for r in &records {
                    for s in &r.samples {
                        store.record(s, at).unwrap();
                    }
                }
                report.accepted -= 1;
            }
            let compiled = Compiled::new(&plan).unwrap();
            for stage in &plan.stages {
                let ev = evaluate(
                    &plan,
                    &compiled,
                    &mut Memory::default(),
                    &store,
                    Some(&stage.id),
                    true,
                    end + SECOND,
                );
                for g in &ev.gates {
                    assert!(
                        matches!(g.verdict, Verdict::Pass | Verdict::NotApplicable),
                        "{} in {}: gate {} is {:?}: {:?} {:?}",
                        plan.id,
                        stage.id,
                        g.id,
                        g.verdict,
                        g.reason,
                        g.comparisons
                    );
                }
                for t in &ev.triggers {
                    assert_ne!(
                        t.verdict,
                        Verdict::Pass,
                        "{}: trigger {} breaches on healthy traffic",
                        plan.id,
                        t.id
                    );
                }
            }
        }
    }
}
