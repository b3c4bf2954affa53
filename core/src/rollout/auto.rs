//! A stage that promotes itself (`auto_progress`), as Flagger and Argo Rollouts promote when
//! their analysis passes: what the evaluator asks for, and what the board says about it.

use super::*;
use crate::plan::Plan;
use crate::role::Role;
use crate::time::Millis;

/// The name the system acts under when a stage promotes itself.
pub const AUTO_ACTOR: &str = "auto_progress";

/// The request that promotes the current stage at `now`, if it says `auto_progress` and is
/// ready: running (a pause stops it), not entered by a step back or a resume after a kill, no
/// alert open, not the last stage, and nothing in [`progress_blockers`]. Decided again at the commit
/// against the newest state, so a pause or a person's progress that got in first wins.
pub fn auto_progress(
    plan: &Plan,
    state: &RolloutState,
    readiness: &Readiness,
    now: Millis,
) -> Option<Request> {
    // An open alert (or an unacknowledged kill) is a person's to look at first.
    if state.phase != Phase::Running || state.manual_only || !state.open_alerts.is_empty() {
        return None;
    }
    let current = state.stage?;
    let stage = plan.stages.get(current)?;
    let next = plan.stages.get(current + 1)?;
    if !stage.auto_progress || !progress_blockers(plan, state, readiness, now).is_empty() {
        return None;
    }
    Some(Request {
        actor: Actor {
            name: AUTO_ACTOR.to_string(),
            role: Role::System,
            ..Default::default()
        },
        action: Action::AutoProgress {
            stage: stage.id.clone(),
        },
        reason: Some(format!(
            "{} is ready (minimum duration run, every blocking gate held, lists and sign-offs done): on to {} at {}%",
            stage.title, next.title, next.traffic
        )),
        at: now,
    })
}

/// What the board says about a stage that promotes itself, if the current one does.
pub fn auto_progress_note(plan: &Plan, state: &RolloutState) -> Option<String> {
    let current = state.stage?;
    let stage = plan.stages.get(current)?;
    let next = plan.stages.get(current + 1)?;
    if !stage.auto_progress {
        return None;
    }
    Some(match state.phase {
        Phase::Running if state.manual_only => {
            format!("Automatic progress off: {}", super::apply::MANUAL_ONLY)
        }
        Phase::Running if !state.open_alerts.is_empty() => {
            "Automatic progress waits: an alert is open until someone acknowledges it".to_string()
        }
        Phase::Running => format!(
            "Progresses by itself to {} once ready; pause to stop it",
            next.title
        ),
        Phase::Paused => "Automatic progress paused: resume to let it go on".to_string(),
        _ => return None,
    })
}
