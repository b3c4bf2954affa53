//! Several `cutover serve` processes on one PostgreSQL behave as one dashboard. This module
//! follows the actions other replicas commit: each commit sends `NOTIFY cutover_rollouts,
//! '<rollout>'` inside its transaction, every replica `LISTEN`s and reloads that rollout's
//! state, hands it to its actuators and its viewers. A version check every second catches
//! anything a dropped listener connection missed, so a change arrives within a second even then.
//! (Metric buckets and the evaluator lease are in `evaluator`.)

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::clock::now;
use crate::runtime::state::AppState;
use crate::store::{Backend, CHANGES_CHANNEL};

/// Reloads rollout `id` if storage holds a newer state than this replica; tells viewers.
pub async fn refresh(state: &AppState, id: &str) -> anyhow::Result<()> {
    let Some(rollout) = state.rollout(id) else {
        return Ok(());
    };
    let Some(stored) = state.storage.load_state(id).await? else {
        return Ok(());
    };
    let mut current = rollout.lock_state().await;
    if stored.version <= current.version {
        return Ok(());
    }
    *current = stored;
    rollout.actuate(&current);
    let snapshot = rollout.snapshot_of(&current, now());
    drop(current);
    rollout.live.send_state(&snapshot);
    Ok(())
}

async fn refresh_stale(state: &AppState) -> anyhow::Result<()> {
    for (id, version) in state.storage.versions().await? {
        let Some(rollout) = state.rollout(&id) else {
            continue;
        };
        let behind = i64::try_from(rollout.state().await.version)? < version;
        if behind {
            refresh(state, &id).await?;
        }
    }
    Ok(())
}

async fn listen(url: &str) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// Follows other replicas' actions until the task is dropped. Nothing to follow on SQLite,
/// which one process owns.
pub async fn follow(state: AppState) {
    let (Backend::Postgres, Some(url)) = (state.storage.backend(), state.storage.url()) else {
        return;
    };
    let url = url.to_string();
    let mut listener: Option<PgListener> = None;
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if listener.is_none() {
            listener = listen(&url)
                .await
                .inspect_err(|e| tracing::warn!("cannot LISTEN for other replicas: {e:#}"))
                .ok();
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => Some(l.recv().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = notified => match n {
                Some(Ok(n)) => {
                    if let Err(e) = refresh(&state, n.payload()).await {
                        tracing::warn!(rollout = n.payload(), "cannot reload: {e:#}");
                    }
                }
                _ => listener = None,
            },
            _ = poll.tick() => {
                if let Err(e) = refresh_stale(&state).await {
                    tracing::warn!("cannot compare versions with other replicas: {e:#}");
                }
            }
        }
    }
}
