//! Keeps the database the size of what is in use: every few minutes, ended sessions, day-old
//! idempotency keys, long-expired share links and metric buckets older than the charts reach
//! are deleted. Every replica may run it; the deletes are idempotent.

use std::time::Duration;

use cutover_core::time::DAY;

use crate::clock::now;
use crate::runtime::state::AppState;

pub const EVERY: Duration = Duration::from_secs(300);
/// A retry later than this with the same key is a new request.
pub const KEYS_KEPT: i64 = DAY;
/// Expired share links are kept this long (the audit log keeps who made them for ever).
pub const SHARES_KEPT: i64 = 30 * DAY;

pub async fn run(state: AppState) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = sweep(&state).await {
            tracing::warn!("cannot prune old sessions, keys and buckets: {e:#}");
        }
    }
}

/// One sweep at the present time.
pub async fn sweep(state: &AppState) -> anyhow::Result<u64> {
    let at = now();
    let retention = state
        .rollouts
        .values()
        .next()
        .map_or(DAY, |r| r.metric_config().coarse_retention);
    let gone = state
        .storage
        .prune(at, at - KEYS_KEPT, at - SHARES_KEPT, at - retention)
        .await?;
    // Flag readers nobody heard from for a day are gone.
    let gone = gone + state.storage.prune_fleet(at - DAY).await?;
    if gone > 0 {
        tracing::debug!(rows = gone, "pruned");
    }
    Ok(gone)
}
