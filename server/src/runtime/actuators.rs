//! A rollout's actuator workers: each converges on the newest desired state
//! (`actuate::converge`) and reports its progress on the rollout, where every viewer sees it.

use std::sync::{Arc, Weak};

use cutover_core::actuate::{ApplyState, Desired};

use crate::actuate::{Applier, BACKOFF, Failure, Progress, converge};
use crate::clock::now;
use crate::runtime::state::Rollout;

/// Starts a worker per actuator of `rollout`. Workers hold the rollout weakly and stop when
/// it is gone.
pub fn spawn_workers(rollout: &Arc<Rollout>) {
    for index in 0..rollout.actuators.len() {
        let receiver = rollout.actuators[index].subscribe();
        let spec = rollout.actuators[index].spec().clone();
        let sink = RolloutSink {
            rollout: Arc::downgrade(rollout),
            index,
        };
        tokio::spawn(converge(receiver, Applier::new(spec), sink, BACKOFF));
    }
}

/// The production `Progress`: the actuator's status on the rollout, shown to every viewer.
struct RolloutSink {
    rollout: Weak<Rollout>,
    index: usize,
}

impl Progress for RolloutSink {
    async fn report(
        &self,
        state: ApplyState,
        target: &Desired,
        attempts: u32,
        error: Option<Failure>,
    ) -> bool {
        let Some(rollout) = self.rollout.upgrade() else {
            return false;
        };
        rollout.actuators[self.index].set_status(state, target, attempts, error);
        // An actuator that took the state is one of the fleet that applied it.
        if state == ApplyState::Applied {
            let id = rollout.actuators[self.index].spec().id().to_string();
            rollout
                .watch
                .heard(&format!("actuator:{id}"), target.version, now());
        }
        let snapshot = rollout.snapshot(now()).await;
        rollout.live.send_state(&snapshot);
        true
    }
}
