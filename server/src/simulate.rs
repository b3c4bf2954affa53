//! Simulated traffic for the demo: realistic events for every metric a plan declares, fed
//! through the same validation as pushed events.

use std::time::Duration;

use cutover_core::plan::{Metric, Plan};
use cutover_core::query::MetricKind;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde_json::{Map, Value, json};

use crate::ingest;
use crate::state::{AppState, now};

/// One event's values: latencies log-normal around a few hundred ms, rare errors, cache hits
/// near half, categories mostly the first value (the runbooks' 70/25/5 mode mix).
pub fn event(plan: &Plan, rng: &mut impl Rng) -> Value {
    let mut values = Map::new();
    for metric in &plan.metrics {
        values.insert(metric.id.clone(), value(metric, rng));
    }
    json!({ "values": values })
}

fn value(metric: &Metric, rng: &mut impl Rng) -> Value {
    match metric.kind {
        MetricKind::Distribution | MetricKind::Gauge => {
            let median: f64 = if metric.unit.as_deref() == Some("ms") {
                240.0
            } else {
                0.9
            };
            let dist = LogNormal::new(median.ln(), 0.45)
                .unwrap_or_else(|_| LogNormal::new(0.0, 1.0).unwrap());
            let v: f64 = dist.sample(rng);
            json!((v * 10.0).round() / 10.0)
        }
        MetricKind::Counter => json!(rng.random_range(0..5)),
        MetricKind::Ratio => {
            let p = if metric.id.contains("error") {
                0.004
            } else {
                0.5
            };
            json!(rng.random_bool(p))
        }
        MetricKind::Category => {
            let weights = [0.70, 0.25, 0.05];
            let roll: f64 = rng.random();
            let mut acc = 0.0;
            let mut pick = metric.values.first().cloned().unwrap_or_default();
            for (v, w) in metric.values.iter().zip(weights) {
                acc += w;
                if roll < acc {
                    pick = v.clone();
                    break;
                }
            }
            json!(pick)
        }
    }
}

/// Feeds every rollout `rate` events per second until the task is dropped.
pub async fn run(state: AppState, rate: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let per_tick = (rate / 5).max(1);
    loop {
        tick.tick().await;
        let mut rng = rand::rng();
        for rollout in state.rollouts.values() {
            let body: String = (0..per_tick)
                .map(|_| event(&rollout.plan, &mut rng).to_string() + "\n")
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
    use super::*;

    #[test]
    fn simulated_events_pass_the_plan_validation() {
        let text = include_str!("../../plans/spiralogic.toml");
        let plan = cutover_core::plan::parse("spiralogic.toml", text).unwrap();
        let mut rng = rand::rng();
        let body: String = (0..200)
            .map(|_| event(&plan, &mut rng).to_string() + "\n")
            .collect();
        let (_, report) = ingest::parse_batch(&plan, &body, 0).unwrap();
        assert_eq!(report.accepted, 200, "{:?}", report.rejected.first());
    }
}
