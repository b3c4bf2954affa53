//! Stores each notify channel's outbox within a quarter of a second of a change (and at a
//! clean shutdown), says every 10 s that this
//! replica is alive, and adopts the outboxes of replicas that stopped (at start, before any
//! worker or evaluation, `AppState::load` adopts this server's own from before a restart):
//! a message told while a channel was down is sent when it is back, even across a restart.

use std::time::Duration;

use cutover_core::time::Millis;

use crate::clock::now;
use crate::runtime::state::{AppState, Rollout};
use crate::store::Storage;

use crate::store::OUTBOX_STALE as STALE;

pub async fn run(state: AppState) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        every.tick().await;
        ticks += 1;
        let at = now();
        for rollout in state.rollouts.values() {
            store_changed(&state.storage, rollout, &state.replica, at).await;
        }
        if ticks.is_multiple_of(TOUCH_EVERY) {
            if let Err(e) = state.storage.touch_outboxes(&state.replica, at).await {
                tracing::warn!("cannot mark this replica's outboxes alive: {e:#}");
            }
            for rollout in state.rollouts.values() {
                adopt(&state.storage, rollout, &state.replica, at - STALE).await;
            }
        }
    }
}

/// How often changed outboxes are stored: what a crash can lose at most.
pub const EVERY: Duration = Duration::from_millis(250);
/// Every this many rounds (10 s), this replica says it is alive and adopts stopped ones'.
const TOUCH_EVERY: u64 = 40;

/// Stores every changed outbox now (at a clean shutdown, after the last delivery).
pub async fn flush(state: &AppState) {
    let at = now();
    for rollout in state.rollouts.values() {
        store_changed(&state.storage, rollout, &state.replica, at).await;
    }
}

async fn store_changed(storage: &Storage, rollout: &Rollout, replica: &str, at: Millis) {
    for (channel, outbox) in rollout.channels.take_changed() {
        let stored = match serde_json::to_string(&outbox) {
            Ok(body) => {
                storage
                    .save_outbox(&rollout.plan.id, &channel, replica, &body, at)
                    .await
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stored {
            tracing::warn!(rollout = %rollout.plan.id, %channel, "cannot store the outbox: {e:#}");
            rollout.channels.mark_changed(&channel);
        }
    }
}

/// Adopts the outboxes of `rollout` stored by replicas silent since `stale_before`.
pub async fn adopt(storage: &Storage, rollout: &Rollout, replica: &str, stale_before: Millis) {
    match storage
        .adopt_outboxes(&rollout.plan.id, replica, stale_before)
        .await
    {
        Ok(stored) => rollout.channels.adopt_stored(&rollout.plan.id, stored),
        Err(e) => tracing::warn!(rollout = %rollout.plan.id, "cannot adopt stored outboxes: {e:#}"),
    }
}
