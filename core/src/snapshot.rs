//! What a viewer gets for a rollout: the plan, its durable state, and the latest gate and
//! trigger evaluation. The app renders this; it never computes a verdict itself.

use serde::{Deserialize, Serialize};

use crate::gates::{GateStatus, TriggerStatus};
use crate::plan::Plan;
use crate::rollout::RolloutState;
use crate::series::Frame;
use crate::time::Millis;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub plan: Plan,
    pub state: RolloutState,
    /// Traffic the new path serves now (0 when killed or not started).
    pub traffic: f64,
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
    /// Server time the snapshot was taken.
    pub at: Millis,
}

impl Snapshot {
    pub fn new(
        plan: &Plan,
        state: &RolloutState,
        gates: Vec<GateStatus>,
        triggers: Vec<TriggerStatus>,
        at: Millis,
    ) -> Snapshot {
        Snapshot {
            plan: plan.clone(),
            state: state.clone(),
            traffic: state.traffic(plan),
            gates,
            triggers,
            at,
        }
    }
}

/// The once-a-second live update: chart series and every gate and trigger as evaluated now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub frame: Frame,
    pub gates: Vec<GateStatus>,
    pub triggers: Vec<TriggerStatus>,
}
