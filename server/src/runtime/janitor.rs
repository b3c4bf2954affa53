//! Keeps the database the size of what is in use: every few minutes, ended sessions, day-old
//! idempotency keys, long-expired share links and metric buckets older than the charts reach
//! are deleted. Every replica may run it; the deletes are idempotent.

use std::time::Duration;

use cutover_core::time::{DAY, HOUR};

use crate::clock::now;
use crate::runtime::state::AppState;

pub const EVERY: Duration = Duration::from_secs(300);
/// 10 min slices rolled up per sweep: two hours every five minutes, so a backlog (a server
/// down for days) is caught up without one sweep holding the database for long.
const ROLL_UP_SLICES: usize = 12;
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
    // The longest any loaded plan keeps (a bucket of a plan no longer loaded goes with it).
    let retention = state
        .rollouts
        .values()
        .map(|r| r.metric_config().lookback())
        .max()
        .unwrap_or(DAY);
    let gone = state
        .storage
        .prune(at, at - KEYS_KEPT, at - SHARES_KEPT, at - retention)
        .await?;
    // What the stores hold in 10 min buckets, the database does too (an hour after them).
    let config = cutover_core::window::StoreConfig::default();
    // A roll-up that fails (a busy database) is tried again next sweep; the rest goes on.
    let rolled = state
        .storage
        .roll_up_buckets(
            at - config.coarse_retention - HOUR,
            config.broad,
            ROLL_UP_SLICES,
        )
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("cannot roll old metric buckets up: {e:#}");
            0
        });
    let gone = gone + rolled;
    // Flag readers nobody heard from for a day are gone.
    let gone = gone + state.storage.prune_fleet(at - DAY).await?;
    if gone > 0 {
        tracing::debug!(rows = gone, "pruned");
    }
    Ok(gone)
}
