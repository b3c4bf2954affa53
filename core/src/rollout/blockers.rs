//! What stands between a rollout and its next step, in the words a refusal uses.

use super::*;
use crate::plan::Plan;
use crate::time::{Millis, Span};

/// What stands between the rollout and its next step (start, the next stage, or completion)
/// at `now`, in the words a refusal would use. Empty when a permitted role could progress.
pub fn progress_blockers(
    plan: &Plan,
    state: &RolloutState,
    readiness: &Readiness,
    now: Millis,
) -> Vec<String> {
    let not_ready = |r: Result<(), Refusal>| match r {
        Err(Refusal::NotReady { blockers, .. }) => blockers,
        Err(other) => vec![other.to_string()],
        Ok(()) => Vec::new(),
    };
    match (state.phase, state.stage) {
        (Phase::NotStarted, _) => not_ready(entry_blockers(plan, state, 0, readiness, &[])),
        (Phase::Running, Some(current)) => {
            let blockers = stage_blockers(plan, state, current, readiness, now);
            if current + 1 >= plan.stages.len() {
                blockers
            } else {
                not_ready(entry_blockers(
                    plan,
                    state,
                    current + 1,
                    readiness,
                    &blockers,
                ))
            }
        }
        (phase, _) => vec![format!("the rollout is {phase}")],
    }
}

/// What keeps the current stage from being done: its minimum duration and its gates.
pub(super) fn stage_blockers(
    plan: &Plan,
    state: &RolloutState,
    current: usize,
    readiness: &Readiness,
    now: Millis,
) -> Vec<String> {
    let mut blockers = Vec::new();
    let Some(stage) = plan.stages.get(current) else {
        return blockers;
    };
    if let (Some(min), Some(entered)) = (stage.min_duration, state.stage_entered_at) {
        let spent = Span(now - entered);
        if spent < min {
            blockers.push(format!(
                "stage {} has run {} of its minimum {}",
                stage.id,
                spent.human(),
                min.human()
            ));
        }
    }
    // A warning gate is shown and recorded; only a blocking one holds progress back.
    for gate in plan
        .gates
        .iter()
        .filter(|g| g.blocks && g.stages.contains(&stage.id))
    {
        if state.overrides.contains_key(&gate.id) {
            continue;
        }
        match readiness.get(&gate.id) {
            Some(r) if r.held() => {}
            // A failure it tolerates: the hold stands, but nothing progresses on a FAIL.
            Some(r) if !r.passing && r.held_for.0 > 0 => blockers.push(format!(
                "gate {} fails now (a tolerated failure: its hold of {} stands until it passes again)",
                gate.id,
                r.held_for.human()
            )),
            Some(r) if r.held_for.0 > 0 => blockers.push(format!(
                "gate {} has held {} of {}",
                gate.id,
                r.held_for.human(),
                gate.hold.human()
            )),
            Some(r) if r.passing => blockers.push(format!(
                "gate {} has just started to hold (needs {})",
                gate.id,
                gate.hold.human()
            )),
            Some(r) => blockers.push(match r.standing {
                Standing::Failing => format!("gate {} is failing", gate.id),
                Standing::NoData => format!("gate {} has no data", gate.id),
                Standing::NotYetKnown => format!(
                    "gate {} is not yet known (its comparison is still gathering evidence)",
                    gate.id
                ),
            }),
            None => blockers.push(format!("gate {} has no data", gate.id)),
        }
    }
    // Checklists that must be done before this stage is left; after the last stage with no
    // watch after launch, leaving it closes the rollout.
    let last_without_hypercare = current + 1 >= plan.stages.len() && plan.hypercare.is_none();
    blockers.extend(checklist_blockers(plan, state, readiness, 0, |c| {
        c.required_to_leave.as_deref() == Some(&stage.id)
            || (last_without_hypercare && c.required_to_close)
    }));
    blockers
}

/// The open items of the checklists `pick` selects, one line per list. An item counts as
/// done when checked at or after `since`, or when the gate it names passes.
pub(super) fn checklist_blockers(
    plan: &Plan,
    state: &RolloutState,
    readiness: &Readiness,
    since: Millis,
    pick: impl Fn(&crate::plan::Checklist) -> bool,
) -> Vec<String> {
    let mut blockers = Vec::new();
    for list in plan.checklists.iter().filter(|c| pick(c)) {
        let open: Vec<&str> = list
            .items
            .iter()
            .filter(|i| {
                let by_gate = i
                    .gate
                    .as_ref()
                    .is_some_and(|g| readiness.get(g).is_some_and(|r| r.passing));
                let checked = state.item_done(list, i, since);
                !by_gate && !checked
            })
            .map(|i| i.id.as_str())
            .collect();
        if !open.is_empty() {
            blockers.push(format!(
                "checklist {} has {} open item(s): {}",
                list.id,
                open.len(),
                open.join(", ")
            ));
        }
    }
    blockers
}

/// What keeps a rollout in hypercare from being closed: the watch's remaining time and the
/// checklists required to close.
pub fn close_blockers(
    plan: &Plan,
    state: &RolloutState,
    readiness: &Readiness,
    now: Millis,
) -> Vec<String> {
    let mut blockers = Vec::new();
    if let (Some(watch), Some(since)) = (plan.hypercare, state.hypercare_since) {
        let spent = Span(now.saturating_sub(since));
        if spent < watch {
            blockers.push(format!(
                "hypercare has run {} of {}",
                spent.human(),
                watch.human()
            ));
        }
    }
    blockers.extend(checklist_blockers(plan, state, readiness, 0, |c| {
        c.required_to_close
    }));
    blockers
}

/// What keeps `target` from being entered: the current stage's blockers plus the target's
/// required checklists and sign-offs.
pub(super) fn entry_blockers(
    plan: &Plan,
    state: &RolloutState,
    target: usize,
    readiness: &Readiness,
    stage_blockers: &[String],
) -> Result<(), Refusal> {
    let Some(stage) = plan.stages.get(target) else {
        return Err(Refusal::Unknown("no such stage".into()));
    };
    let mut blockers = stage_blockers.to_vec();
    blockers.extend(checklist_blockers(plan, state, readiness, 0, |c| {
        c.required_for.as_deref() == Some(&stage.id)
    }));
    for signoff in plan.signoffs.iter().filter(|s| s.stage == stage.id) {
        let marks = state
            .approvals
            .get(&stage.id)
            .map_or(&[][..], Vec::as_slice);
        if signoff.each {
            let missing: Vec<&str> = signoff
                .roles
                .iter()
                .filter(|r| !marks.iter().any(|m| m.by.role == **r))
                .map(|r| r.as_str())
                .collect();
            if !missing.is_empty() {
                blockers.push(format!(
                    "sign-off for {} needs an approval from {}",
                    stage.id,
                    missing.join(" and ")
                ));
            }
            continue;
        }
        let have = marks.len();
        if have < signoff.approvals as usize {
            blockers.push(format!(
                "sign-off for {} has {have} of {} approvals",
                stage.id, signoff.approvals
            ));
        }
    }
    if blockers.is_empty() {
        Ok(())
    } else {
        Err(Refusal::NotReady {
            stage: stage.id.clone(),
            blockers,
        })
    }
}
