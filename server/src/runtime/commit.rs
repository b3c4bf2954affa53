//! The commit of an action: decide in core against the newest state and gate readiness, write
//! the state and its audit record in one transaction, then hand the new state to the
//! actuators, the viewers and the notify channels. Person (over HTTP) or trigger (the evaluator), every action
//! goes through here; its errors are its own, mapped to HTTP answers in `http::error`.

use cutover_core::rollout::{self, Refusal, Request};
use cutover_core::snapshot::Snapshot;

use crate::runtime::state::{AppState, Rollout};

/// Why an action was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The state machine refused it (role, phase, gates, reason...).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Other replicas kept committing first, five times over.
    #[error("the rollout kept changing underneath this action; retry")]
    Contended,
    /// The plan file lost the rollout's stage: only a kill, alerts and acknowledgements.
    #[error("{0}; until the plan file is fixed, only a kill (and alerts) can act on it")]
    PlanMismatch(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Decides `request` in core against the latest gate readiness, commits the new state and its
/// audit record (with every gate's verdict as evidence) in one transaction, and tells every
/// viewer. Person or trigger, every action goes through here.
pub async fn commit(
    state: &AppState,
    rollout: &Rollout,
    request: Request,
) -> Result<Snapshot, CommitError> {
    commit_keyed(state, rollout, request, None).await
}

/// `commit` that settles the idempotency key `key` (claimed for this request) in the action's
/// own transaction.
pub async fn commit_keyed(
    state: &AppState,
    rollout: &Rollout,
    request: Request,
    key: Option<&str>,
) -> Result<Snapshot, CommitError> {
    if let Some(why) = &rollout.mismatch
        && !matches!(
            request.action,
            rollout::Action::Kill | rollout::Action::Alert { .. } | rollout::Action::Ack { .. }
        )
    {
        return Err(CommitError::PlanMismatch(why.clone()));
    }
    let mut current = rollout.lock_state().await;
    if state.storage.backend() == crate::store::Backend::Postgres
        && let Some(stored) = state.storage.load_state(&rollout.plan.id).await?
        && stored.version > current.version
    {
        // Decide on the newest state, not on what this replica last heard of.
        *current = stored;
    }
    // Another replica may have acted since this one last heard: a lost race reloads the state
    // and decides again, so a kill still lands (and a progress is refused after a kill).
    let mut attempts = 0;
    let (next, record, appended) = loop {
        let readiness = rollout.readiness();
        let (next, record) = rollout::apply(&rollout.plan, &current, &request, &readiness)?;
        let evidence = rollout.evidence(&current);
        let committed = state
            .storage
            .commit_keyed(
                &rollout.plan.id,
                current.version,
                &next,
                &record,
                &evidence,
                key,
            )
            .await?;
        if let Some(appended) = committed {
            break (next, record, appended);
        }
        attempts += 1;
        match state.storage.load_state(&rollout.plan.id).await? {
            Some(stored) if attempts < 5 && stored.version > current.version => *current = stored,
            _ => {
                return Err(CommitError::Contended);
            }
        }
    };
    *current = next;
    rollout.actuate(&current);
    // People are told; queuing never waits on a channel.
    if let Some(mut event) = cutover_core::notify::of_record(&rollout.plan, &record) {
        // The head after a kill, kept in the war room's channel, is what shows a later
        // rewrite of the log to anyone who compares it with the API's.
        if event.kind == cutover_core::notify::EventKind::Kill {
            event.lines.push(format!(
                "Audit log head after entry {}: {}",
                appended.seq, appended.head
            ));
        }
        let page = crate::runtime::evaluator::page(state, &rollout.plan.id);
        rollout.channels.tell(&rollout.plan, &event, page);
    }
    let snapshot = rollout.snapshot_of(&current, request.at);
    drop(current);
    rollout.live.send_state(&snapshot);
    Ok(snapshot)
}
