//! Once a second per rollout: compact the metric windows, evaluate every gate and trigger,
//! act on triggers that fired (an automatic kill goes through the same audited path as a
//! person's), and send viewers a tick.
//!
//! Several replicas on one database: each writes the buckets of the events it took and merges
//! the others' (fetched every second), so every replica's windows hold every event. Only the
//! holder of the `evaluator` lease advances hold timers and trigger episodes, saves them, and
//! acts on firings; the others evaluate with the leader's saved timers, to show the same
//! verdicts, and act on nothing. A dead leader's lease runs out after `LEASE_TTL`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cutover_core::gates::{self, Firing};
use cutover_core::plan::TriggerAction;
use cutover_core::role::Role;
use cutover_core::rollout::{Action, Actor, Phase, Request};
use cutover_core::schedule::{self, Overrun};
use cutover_core::snapshot::Tick;
use cutover_core::time::{HOUR, Millis, SECOND};

use crate::clock::now;
use crate::runtime::commit::commit;
use crate::runtime::state::{AppState, Rollout, Unsaved};

/// Evaluates `rollout` at `at`, acts on firings and publishes a tick.
pub async fn tick(state: &AppState, rollout: &Arc<Rollout>, at: Millis) {
    let leader = state.leader.load(Ordering::Relaxed);
    if let Err(e) = pull(state, rollout, at, leader).await {
        tracing::warn!(rollout = %rollout.plan.id, "cannot read other replicas' metrics or timers: {e:#}");
    }
    let tick = judge(state, rollout, at, leader, true).await;
    confirm(state, rollout, at, leader).await;
    if let Err(e) = persist(state, rollout, at).await {
        tracing::error!(rollout = %rollout.plan.id, "cannot persist metrics or hold timers: {e:#}");
    }
    if let Some(tick) = tick {
        rollout.live.send_tick(tick);
    }
}

/// The fleet's confirmation: a kill unconfirmed in time (or confirmed after all) is told by
/// the leader; every replica shows its viewers the fleet as it moved; kill confirmations are
/// saved for the kill's record.
async fn confirm(state: &AppState, rollout: &Arc<Rollout>, at: Millis, leader: bool) {
    if !state.storage.single_server()
        && let Err(e) = share_fleet(state, rollout, at).await
    {
        tracing::warn!(rollout = %rollout.plan.id, "cannot share the fleet with the other replicas: {e:#}");
    }
    if leader && let Some(due) = rollout.watch.due(at) {
        let event = cutover_core::notify::of_confirmation(&rollout.plan, &due, at);
        rollout
            .channels
            .tell(&rollout.plan, &event, page(state, &rollout.plan.id));
    }
    if rollout.watch.take_changed() {
        let snapshot = rollout.snapshot(at).await;
        rollout.live.send_state(&snapshot);
    }
    let unsaved = rollout.watch.take_unsaved();
    if !unsaved.is_empty()
        && let Err(e) = state
            .storage
            .save_confirmations(&rollout.plan.id, &unsaved)
            .await
    {
        tracing::warn!(rollout = %rollout.plan.id, "cannot save kill confirmations: {e:#}");
        rollout.watch.restore_unsaved(unsaved);
    }
}

/// Evaluates `rollout` at a past moment, as the leader would have then: `cutover demo` builds
/// its rollouts' history of evaluations (holds, episodes, automatic actions) this way, with
/// the live evaluator stopped. Nothing is saved or sent: the next live tick does both.
pub async fn replay(state: &AppState, rollout: &Arc<Rollout>, at: Millis) {
    judge(state, rollout, at, true, false).await;
}

/// Evaluates every gate and trigger at `at`; the leader also acts on firings and on a stage
/// past its timebox. `live`: a tick for viewers too (a replay of the past makes none).
async fn judge(
    state: &AppState,
    rollout: &Arc<Rollout>,
    at: Millis,
    leader: bool,
    live: bool,
) -> Option<Tick> {
    let current = rollout.state().await;
    // Before start, gates are judged for the stage the start would enter.
    let stage = current
        .stage
        .or((current.phase == Phase::NotStarted).then_some(0))
        .and_then(|i| rollout.plan.stages.get(i))
        .map(|s| s.id.clone());
    let (evaluated, events, frame) = rollout.evaluate(
        gates::Moment {
            stage: stage.as_deref(),
            entered_at: current.stage_entered_at,
            armed: current.phase.armed(),
            at,
        },
        live,
    );
    if leader {
        // Told by the leader alone, as it alone acts.
        let statuses: Vec<_> = rollout.actuators.iter().map(|a| a.status()).collect();
        let failing = cutover_core::notify::of_actuators(&rollout.plan, &statuses, at);
        for event in events.iter().chain(&failing) {
            rollout
                .channels
                .tell(&rollout.plan, event, page(state, &rollout.plan.id));
        }
        for firing in &evaluated.firings {
            fire(state, rollout, firing, at).await;
        }
        // Periodic status updates and overdue items, live only (a replay of the past tells
        // nobody).
        if crate::clock::now().saturating_sub(at) < 5_000 {
            for event in cutover_core::notify::overdue_events(&rollout.plan, &current, at) {
                rollout
                    .channels
                    .tell(&rollout.plan, &event, page(state, &rollout.plan.id));
            }
            rollout.channels.status_updates(
                &rollout.plan,
                &current,
                &evaluated,
                at,
                page(state, &rollout.plan.id),
            );
        }
        // Open alerts nobody acknowledged go on to the next channel (each once).
        for (from, id) in cutover_core::notify::escalations(&rollout.plan, &current, at) {
            if let Some(open) = current.open_alerts.get(&id) {
                let event = cutover_core::notify::open_alert_event(&rollout.plan, &id, open, at);
                rollout
                    .channels
                    .escalate(from, &event, page(state, &rollout.plan.id));
            }
        }
        // A stage that promotes itself, once ready: decided again at the commit against the
        // newest state, so a pause or a person's progress that got in first wins.
        if let Some(request) =
            cutover_core::rollout::auto_progress(&rollout.plan, &current, &rollout.readiness(), at)
        {
            match commit(state, rollout, request).await {
                Ok(_) => tracing::info!(rollout = %rollout.plan.id, "stage promoted itself"),
                Err(e) => {
                    tracing::info!(rollout = %rollout.plan.id, "automatic progress refused: {e}")
                }
            }
        }
        if let Some(over) = schedule::overrun_due(&rollout.plan, &current, at) {
            timebox(state, rollout, &over, at).await;
        } else if let Some(over) = schedule::overrun_action_pending(&rollout.plan, &current, at) {
            // Recorded, but its kill or step back did not commit: take it again.
            act_on_overrun(state, rollout, &over, at).await;
        }
    }
    Some(Tick {
        seq: 0,
        frame: frame?,
        gates: evaluated.gates,
        triggers: evaluated.triggers,
        replicas: rollout.replicas(at),
    })
}

/// The rollout page's address, when the server knows where people reach it.
pub fn page(state: &AppState, rollout: &str) -> Option<String> {
    state.public_url.as_deref().map(|base| {
        format!(
            "{}/r/{}",
            base.trim_end_matches('/'),
            cutover_core::route::segment(rollout)
        )
    })
}

/// How often the recent metric buckets are written.
const SAVE_EVERY: Millis = 5 * SECOND;
/// How long the evaluator lease lasts unless renewed (every tick renews it).
pub const LEASE_TTL: Millis = 5 * SECOND;
/// Fetch buckets rewritten this long before the last fetch again: covers a commit that
/// landed just after it, and replica clocks this far apart. Re-fetching replaces, never adds.
const PULL_SLACK: Millis = 5 * SECOND;

/// Tells the other replicas what this one heard of the flag readers, and takes what they
/// heard: an instance whose connection stays on one replica counts on all of them.
async fn share_fleet(state: &AppState, rollout: &Rollout, at: Millis) -> anyhow::Result<()> {
    let outgoing = rollout.watch.take_outgoing();
    if !outgoing.is_empty() {
        state
            .storage
            .save_fleet(&rollout.plan.id, &state.replica, &outgoing)
            .await?;
    }
    let since = rollout.watch.pulled(at) - PULL_SLACK;
    let heard = state
        .storage
        .fleet_heard(&rollout.plan.id, &state.replica, since.max(at - HOUR))
        .await?;
    rollout.watch.merge(&heard);
    Ok(())
}

/// Merges the buckets other replicas wrote since the last look; a follower also takes the
/// leader's latest hold timers and trigger episodes.
async fn pull(state: &AppState, rollout: &Rollout, at: Millis, leader: bool) -> anyhow::Result<()> {
    let since = rollout.pulled_at() - PULL_SLACK;
    let buckets = state
        .storage
        .buckets_changed(&rollout.plan.id, &state.replica, since)
        .await?;
    let memory = if leader {
        None
    } else {
        state.storage.load_evaluation(&rollout.plan.id).await?
    };
    rollout.merge_stored(buckets, memory, at);
    Ok(())
}

/// Writes the hold timers when they changed, and every few seconds the metric buckets that can
/// still change (the lateness allowance back to now), so a restart keeps both.
/// How stale the saved "last evaluated" time may get: after a crash, up to this much
/// observed time may be treated as unobserved (holds resume a little short, never long).
const OBSERVED_SAVE_EVERY: Millis = 5 * SECOND;

/// Whether the timers must be written: they changed, or the saved "last evaluated" time has
/// fallen `OBSERVED_SAVE_EVERY` behind (not every second: that would be a write a second per
/// rollout for a clock alone).
fn memory_due(saved: Option<&gates::Memory>, now: &gates::Memory) -> bool {
    let Some(saved) = saved else { return true };
    let behind = match (saved.observed_at, now.observed_at) {
        (Some(a), Some(b)) => b.saturating_sub(a) >= OBSERVED_SAVE_EVERY,
        (a, b) => a != b,
    };
    behind || saved.gates != now.gates || saved.triggers != now.triggers || saved.stage != now.stage
}

async fn persist(state: &AppState, rollout: &Rollout, at: Millis) -> anyhow::Result<()> {
    let leader = state.leader.load(Ordering::Relaxed);
    let Unsaved {
        memory,
        buckets,
        until,
    } = rollout.unsaved(leader, memory_due, SAVE_EVERY, at);
    if let Some(memory) = memory {
        state
            .storage
            .save_evaluation(&rollout.plan.id, &memory)
            .await?;
    }
    if !buckets.is_empty() {
        state
            .storage
            .save_buckets(&rollout.plan.id, &state.replica, &buckets, at)
            .await?;
        tracing::debug!(rollout = %rollout.plan.id, buckets = buckets.len(), until, "metric buckets saved");
    }
    Ok(())
}

async fn fire(state: &AppState, rollout: &Arc<Rollout>, firing: &Firing, at: Millis) {
    // An alert is recorded like any action (audit log, timeline, a marker on every chart), so
    // it survives a reload and a restart; a kill also changes the state.
    let action = match firing.action {
        TriggerAction::Alert => Action::Alert {
            trigger: firing.trigger.clone(),
        },
        TriggerAction::Kill => Action::Kill,
        TriggerAction::StepBack => Action::StepBack,
    };
    let request = Request {
        actor: Actor {
            name: format!("trigger {}", firing.trigger),
            role: Role::System,
            ..Default::default()
        },
        action,
        reason: Some(firing.reason.clone()),
        at,
    };
    match commit(state, rollout, request).await {
        Ok(_) => {
            tracing::warn!(rollout = %rollout.plan.id, trigger = %firing.trigger, action = ?firing.action, "trigger fired: {}", firing.reason)
        }
        Err(e) => {
            tracing::info!(rollout = %rollout.plan.id, trigger = %firing.trigger, "trigger fired, nothing recorded: {e}")
        }
    }
}

/// A stage past its timebox: recorded once for this entry into the stage (so every screen
/// says so), then the stage's `on_max_duration` acted on like a trigger's action.
async fn timebox(state: &AppState, rollout: &Arc<Rollout>, over: &Overrun, at: Millis) {
    let noted = Action::Timebox {
        stage: over.stage.clone(),
    };
    if let Err(e) = commit(state, rollout, overrun_request(over, noted, at)).await {
        tracing::info!(rollout = %rollout.plan.id, stage = %over.stage, "timebox passed, nothing recorded: {e}");
        return;
    }
    tracing::warn!(rollout = %rollout.plan.id, "{}", over.reason());
    act_on_overrun(state, rollout, over, at).await;
}

/// The stage's `on_max_duration` kill or step back, as the system (an alert is the record).
async fn act_on_overrun(state: &AppState, rollout: &Arc<Rollout>, over: &Overrun, at: Millis) {
    let action = match over.action {
        TriggerAction::Alert => return,
        TriggerAction::Kill => Action::Kill,
        TriggerAction::StepBack => Action::StepBack,
    };
    if let Err(e) = commit(state, rollout, overrun_request(over, action, at)).await {
        tracing::warn!(rollout = %rollout.plan.id, stage = %over.stage, "timebox action refused: {e}");
    }
}

/// An overrun's action, taken by the system with the overrun as its reason.
fn overrun_request(over: &Overrun, action: Action, at: Millis) -> Request {
    Request {
        actor: Actor {
            name: format!("timebox of {}", over.stage),
            role: Role::System,
            ..Default::default()
        },
        action,
        reason: Some(over.reason()),
        at,
    }
}

/// Ticks every rollout once a second until the task is dropped.
pub async fn run(state: AppState) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let at = now();
        let leader = match state
            .storage
            .acquire_lease("evaluator", &state.replica, at, LEASE_TTL)
            .await
        {
            Ok(leader) => leader,
            Err(e) => {
                // Without the database nobody can save timers; stop advancing them here.
                tracing::warn!("cannot renew the evaluator lease: {e:#}");
                false
            }
        };
        if state.leader.swap(leader, Ordering::Relaxed) != leader {
            tracing::info!(replica = %state.replica, leader, "evaluator lease changed hands");
        }
        for rollout in state.rollouts.values() {
            tick(&state, rollout, now()).await;
        }
    }
}
