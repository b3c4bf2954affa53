//! The demo's live traffic: simulated events fed into every rollout, as if services pushed
//! them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clock::now;
use crate::runtime::state::AppState;
use crate::sources::ingest;
use crate::sources::simulate::{Mix, Scenario, Targets, warmth_after};

/// Feeds every rollout `rate` events per second, each with its own mix (healthy when not
/// named), until the task is dropped.
pub async fn run(state: AppState, rate: u32, mixes: BTreeMap<String, Mix>) {
    let targets: BTreeMap<String, Targets> = state
        .rollouts
        .iter()
        .map(|(id, r)| (id.clone(), Targets::from_plan(&r.plan)))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let per_tick = (rate / 5).max(1);
    let started = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let mut rng = rand::rng();
        let warmth = warmth_after(started.elapsed());
        for (id, rollout) in state.rollouts.iter() {
            let Some(t) = targets.get(id) else { continue };
            let mix = Mix {
                warmth,
                ..mixes.get(id).copied().unwrap_or_default()
            };
            if mix.scenario == Scenario::NoData {
                continue;
            }
            let body: String = (0..per_tick)
                .map(|_| t.event(&rollout.plan, mix, &mut rng).to_string() + "\n")
                .collect();
            let at = now();
            if let Ok((records, mut report)) = ingest::parse_batch(&rollout.plan, &body, at) {
                rollout.record(records, at, &mut report);
            }
        }
    }
}
