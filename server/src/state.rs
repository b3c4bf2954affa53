//! Everything a handler needs, cheap to clone: storage and the loaded rollouts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cutover_core::plan::Plan;
use cutover_core::rollout::RolloutState;
use cutover_core::snapshot::Snapshot;
use cutover_core::time::Millis;
use tokio::sync::Mutex;

use crate::ingest::{Observation, ObservedValue};
use crate::live::Live;
use crate::storage::Storage;

#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub rollouts: Arc<BTreeMap<String, Arc<Rollout>>>,
}

/// One loaded plan, its durable state and its live data.
pub struct Rollout {
    pub plan: Plan,
    /// The last committed state. Actions hold this lock from decision to commit, so actions
    /// on one rollout are serialised: a kill and a progress can never both decide on the same
    /// state, and whichever runs second sees the first.
    pub state: Mutex<RolloutState>,
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

    pub async fn snapshot(&self, now: Millis) -> Snapshot {
        Snapshot::new(&self.plan, &*self.state.lock().await, now)
    }
}

impl AppState {
    /// Registers every plan as a rollout in storage and loads its durable state.
    pub async fn load(storage: Storage, plans: Vec<Plan>) -> anyhow::Result<AppState> {
        let mut rollouts = BTreeMap::new();
        for plan in plans {
            let hash = crate::storage::hash_token(&serde_json::to_string(&plan)?);
            let fresh = RolloutState::new();
            storage
                .ensure_rollout(
                    &plan.id,
                    &plan.title,
                    &hash,
                    &serde_json::to_string(&fresh)?,
                    now(),
                )
                .await?;
            let state = storage.load_state(&plan.id).await?.unwrap_or(fresh);
            let live = Live::new(&plan);
            let rollout = Rollout {
                plan,
                state: Mutex::new(state),
                live,
            };
            rollouts.insert(rollout.plan.id.clone(), Arc::new(rollout));
        }
        Ok(AppState {
            storage,
            rollouts: Arc::new(rollouts),
        })
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
