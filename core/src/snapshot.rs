//! What a viewer gets for a rollout: the plan, its durable state and what follows from it.
//! The app renders this; it never computes a verdict itself.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::rollout::RolloutState;
use crate::time::Millis;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub plan: Plan,
    pub state: RolloutState,
    /// Traffic the new path serves now (0 when killed or not started).
    pub traffic: f64,
    /// Server time the snapshot was taken.
    pub at: Millis,
}

impl Snapshot {
    pub fn new(plan: &Plan, state: &RolloutState, at: Millis) -> Snapshot {
        Snapshot {
            plan: plan.clone(),
            state: state.clone(),
            traffic: state.traffic(plan),
            at,
        }
    }
}
