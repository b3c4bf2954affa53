//! Everything a handler needs, cheap to clone: storage and the loaded rollouts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cutover_core::plan::Plan;
use cutover_core::time::Millis;

use crate::ingest::{Observation, ObservedValue};
use crate::live::Live;
use crate::storage::Storage;

#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub rollouts: Arc<BTreeMap<String, Arc<Rollout>>>,
}

/// One loaded plan and its live data.
pub struct Rollout {
    pub plan: Plan,
    pub live: Live,
}

impl Rollout {
    /// Applies accepted observations to the live data.
    pub fn record(&self, observations: &[Observation]) {
        let latency = self.live.latency_metric();
        // A request is counted once, by its latency observation, not once per value.
        for o in observations {
            if let ObservedValue::Number(v) = o.value
                && Some(o.metric.as_str()) == latency
            {
                self.live.record(o.ts, Some(v));
            }
        }
    }
}

impl AppState {
    pub fn new(storage: Storage, plans: Vec<Plan>) -> AppState {
        let rollouts = plans
            .into_iter()
            .map(|plan| {
                let live = Live::new(&plan);
                (plan.id.clone(), Arc::new(Rollout { plan, live }))
            })
            .collect();
        AppState {
            storage,
            rollouts: Arc::new(rollouts),
        }
    }

    pub fn rollout(&self, id: &str) -> Option<&Arc<Rollout>> {
        self.rollouts.get(id)
    }
}

/// Wall-clock milliseconds. The server reads the clock here and passes it into core.
pub fn now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
