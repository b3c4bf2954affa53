//! Deciding one request: who may, whether the state allows it, and the new state.

use super::blockers::{checklist_blockers, close_blockers, entry_blockers, stage_blockers};
use super::*;
use crate::flag::FlagValue;
use crate::plan::Plan;
use crate::role::Role;
use crate::time::{Millis, Span};

/// Why a stage entered by a step back or a resume after a kill waits for a person.
pub const MANUAL_ONLY: &str =
    "entered by a step back or a resume after a kill: a person progresses from here";

/// Applies `request` to `state`. On success returns the new state and its audit record.
pub fn apply(
    plan: &Plan,
    state: &RolloutState,
    request: &Request,
    readiness: &Readiness,
) -> Result<(RolloutState, AuditRecord), Refusal> {
    if !request.actor.also.is_empty() {
        // Several roles: the first that may take the action takes it (the highest grant wins
        // per permission); if none may, the refusal names the first role.
        let mut first = None;
        for role in std::iter::once(request.actor.role).chain(request.actor.also.iter().copied()) {
            let mut one = request.clone();
            one.actor.role = role;
            one.actor.also.clear();
            match apply(plan, state, &one, readiness) {
                Err(e @ Refusal::Forbidden { .. }) => {
                    first.get_or_insert(e);
                }
                other => return other,
            }
        }
        return Err(first.expect("at least one role was tried"));
    }
    let action = &request.action;
    let allowed = action.allowed_roles(&plan.permissions);
    // A rollback trigger acts whatever the plan's permissions say: that is its whole point.
    let automatic =
        request.actor.role == Role::System && matches!(action, Action::Kill | Action::StepBack);
    if !automatic && !allowed.contains(&request.actor.role) {
        return Err(Refusal::Forbidden {
            action: action.name().into(),
            role: request.actor.role,
            allowed: allowed
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let needs_reason = matches!(
        action,
        Action::Kill
            | Action::StepBack
            | Action::Override { .. }
            | Action::Alert { .. }
            | Action::Timebox { .. }
            | Action::Decide { .. }
            | Action::Adjust { .. }
    ) || (matches!(action, Action::Resume) && state.phase == Phase::Killed);
    if needs_reason && reason.is_none() {
        return Err(Refusal::ReasonRequired {
            action: action.name().into(),
        });
    }
    let wrong_phase = || Refusal::WrongPhase {
        action: action.name().into(),
        phase: state.phase.to_string(),
    };
    let mark = Mark {
        by: request.actor.clone(),
        at: request.at,
        reason: reason.map(str::to_string),
    };
    let mut next = state.clone();
    match action {
        Action::Start => {
            if state.phase != Phase::NotStarted {
                return Err(wrong_phase());
            }
            entry_blockers(plan, state, 0, readiness, &[])?;
            enter(plan, &mut next, 0, request.at);
            next.phase = Phase::Running;
            // A start at the scheduled time keeps it; one without a schedule is T-0.
            next.t0.get_or_insert(request.at);
        }
        Action::Schedule { t0 } => {
            if state.phase != Phase::NotStarted {
                return Err(wrong_phase());
            }
            if t0.abs_diff(request.at) > crate::time::MAX_SCHEDULE.unsigned_abs() {
                return Err(Refusal::Invalid(format!(
                    "T-0 must be within {} of now",
                    Span(crate::time::MAX_SCHEDULE).human()
                )));
            }
            next.t0 = Some(*t0);
        }
        Action::Timebox { stage } => {
            let current = state.stage.and_then(|i| plan.stages.get(i));
            let over = overrun(plan, state, request.at);
            if current.is_none_or(|s| &s.id != stage) || over.is_none() {
                return Err(Refusal::Unknown(format!(
                    "stage {stage} is not past its max_duration"
                )));
            }
            if state.timebox_noted.is_some() && state.timebox_noted == state.stage_entered_at {
                return Err(Refusal::Duplicate(format!(
                    "the overrun of {stage} is already recorded"
                )));
            }
            next.timebox_noted = state.stage_entered_at;
        }
        Action::AutoProgress { stage } => {
            let current = match (state.phase, state.stage) {
                (Phase::Running, Some(i)) => i,
                _ => return Err(wrong_phase()),
            };
            let here = plan.stages.get(current);
            if here.is_none_or(|s| &s.id != stage) {
                return Err(Refusal::Duplicate(format!(
                    "the rollout has left stage {stage} already"
                )));
            }
            if !here.is_some_and(|s| s.auto_progress) || current + 1 >= plan.stages.len() {
                return Err(Refusal::Invalid(format!(
                    "stage {stage} does not progress by itself"
                )));
            }
            if state.manual_only {
                return Err(Refusal::NotReady {
                    stage: format!("automatic progress from {stage}"),
                    blockers: vec![MANUAL_ONLY.to_string()],
                });
            }
            if let Some(open) = state.open_alerts.keys().next() {
                return Err(Refusal::NotReady {
                    stage: format!("automatic progress from {stage}"),
                    blockers: vec![format!(
                        "alert {open} is open until someone acknowledges it"
                    )],
                });
            }
            let stage_blockers = stage_blockers(plan, state, current, readiness, request.at);
            entry_blockers(plan, state, current + 1, readiness, &stage_blockers)?;
            enter(plan, &mut next, current + 1, request.at);
        }
        Action::Progress => {
            let current = match (state.phase, state.stage) {
                (Phase::Running, Some(i)) => i,
                _ => return Err(wrong_phase()),
            };
            let stage_blockers = stage_blockers(plan, state, current, readiness, request.at);
            if current + 1 >= plan.stages.len() {
                if !stage_blockers.is_empty() {
                    let stage = plan
                        .stages
                        .get(current)
                        .map_or(String::new(), |s| s.id.clone());
                    return Err(Refusal::NotReady {
                        stage: format!("completion of {stage}"),
                        blockers: stage_blockers,
                    });
                }
                // With a watch after launch the rollout stays live until a close; without
                // one, completing the last stage is the close.
                if plan.hypercare.is_some() {
                    next.phase = Phase::Hypercare;
                    next.hypercare_since = Some(request.at);
                } else {
                    next.phase = Phase::Completed;
                }
            } else {
                entry_blockers(plan, state, current + 1, readiness, &stage_blockers)?;
                enter(plan, &mut next, current + 1, request.at);
            }
        }
        Action::Pause => {
            if state.phase != Phase::Running {
                return Err(wrong_phase());
            }
            next.phase = Phase::Paused;
            next.paused = Some(mark.clone());
        }
        Action::Resume => match state.phase {
            Phase::Paused => {
                next.phase = Phase::Running;
                next.paused = None;
            }
            // Back to the stage it was killed in, with its clock restarted: gates must hold
            // again before the next progress.
            Phase::Killed => {
                let since = state.killed.as_ref().map_or(0, |k| k.at);
                let blockers =
                    checklist_blockers(plan, state, readiness, since, |c| c.required_to_resume);
                if !blockers.is_empty() {
                    return Err(Refusal::NotReady {
                        stage: "resume after the kill".into(),
                        blockers,
                    });
                }
                next.hypercare_since = None;
                next.phase = if state.stage.is_some() {
                    Phase::Running
                } else {
                    Phase::NotStarted
                };
                next.killed = None;
                next.paused = None;
                if let Some(i) = state.stage {
                    enter(plan, &mut next, i, request.at);
                    next.manual_only = true;
                }
            }
            _ => return Err(wrong_phase()),
        },
        Action::Kill => {
            if matches!(state.phase, Phase::Killed | Phase::Completed) {
                return Err(wrong_phase());
            }
            next.phase = Phase::Killed;
            next.killed = Some(mark.clone());
            next.adjusted.clear();
            // A kill is open until a person says they are on it, whoever pressed it: the
            // on-call is paged for a manual kill too, and the acknowledgement says who has it.
            next.open_alerts
                .entry(KILL_ALERT.to_string())
                .or_insert(OpenAlert {
                    since: request.at,
                    by: request.actor.name.clone(),
                    kind: OpenAlertKind::Kill,
                });
        }
        Action::StepBack => {
            let current = match (state.phase, state.stage) {
                (Phase::Running | Phase::Paused | Phase::Hypercare | Phase::Completed, Some(i)) => {
                    i
                }
                _ => return Err(wrong_phase()),
            };
            let Some(previous) = current.checked_sub(1) else {
                let stage = plan.stages.first().map_or("", |s| s.id.as_str());
                return Err(Refusal::FirstStage {
                    stage: stage.to_string(),
                });
            };
            // The previous stage's clock starts again: its gates must hold before a new
            // progress. A paused rollout stays paused; a completed one runs again.
            enter(plan, &mut next, previous, request.at);
            next.manual_only = true;
            if matches!(state.phase, Phase::Hypercare | Phase::Completed) {
                next.phase = Phase::Running;
                next.hypercare_since = None;
            }
        }
        Action::Close => {
            if state.phase != Phase::Hypercare {
                return Err(wrong_phase());
            }
            let blockers = close_blockers(plan, state, readiness, request.at);
            if !blockers.is_empty() {
                return Err(Refusal::NotReady {
                    stage: "the close".into(),
                    blockers,
                });
            }
            next.phase = Phase::Completed;
            next.hypercare_since = None;
        }
        Action::Override { gate } => {
            let current = match (state.phase, state.stage) {
                (Phase::Running | Phase::Paused, Some(i)) => i,
                _ => return Err(wrong_phase()),
            };
            let stage_id = plan.stages.get(current).map_or("", |s| s.id.as_str());
            let guards = plan
                .gates
                .iter()
                .any(|g| &g.id == gate && g.stages.iter().any(|s| s == stage_id));
            if !guards {
                return Err(Refusal::Unknown(format!(
                    "no gate \"{gate}\" guards stage {stage_id}"
                )));
            }
            next.overrides.insert(gate.clone(), mark.clone());
        }
        Action::Check { list, item } | Action::Uncheck { list, item } => {
            let Some(found) = plan
                .checklists
                .iter()
                .find(|c| &c.id == list)
                .and_then(|c| c.items.iter().find(|i| &i.id == item))
            else {
                return Err(Refusal::Unknown(format!("no checklist item {list}/{item}")));
            };
            if let Some(role) = found.role
                && role != request.actor.role
                && request.actor.role != Role::Lead
            {
                return Err(Refusal::Forbidden {
                    action: format!("{} {list}/{item}", action.name()),
                    role: request.actor.role,
                    allowed: format!("{role}, lead"),
                });
            }
            let key = format!("{list}/{item}");
            let day = request.at.div_euclid(crate::time::DAY);
            let checking = matches!(action, Action::Check { .. });
            if found.every.is_some() {
                check_occurrence(state, &mut next, (list, found), checking, &mark)?;
            } else if found.days > 1 {
                // Several days' checks: one a day, each kept; an uncheck takes back the last.
                let days = next.check_days.entry(key.clone()).or_default();
                if checking {
                    if days.last() == Some(&day) {
                        return Err(Refusal::Duplicate(format!(
                            "{key} is already checked today"
                        )));
                    }
                    days.push(day);
                    next.checked.insert(key, mark.clone());
                } else if days.pop().is_none() {
                    return Err(Refusal::Duplicate(format!("{key} is not checked")));
                } else if days.is_empty() {
                    next.check_days.remove(&key);
                    next.checked.remove(&key);
                }
            } else if checking {
                if state.checked.contains_key(&key) {
                    return Err(Refusal::Duplicate(format!("{key} is already checked")));
                }
                next.checked.insert(key, mark.clone());
            } else if next.checked.remove(&key).is_none() {
                return Err(Refusal::Duplicate(format!("{key} is not checked")));
            }
        }
        Action::PlanChanged => {
            return Err(Refusal::Unknown(
                "a plan change is recorded when the server loads the plan, not requested".into(),
            ));
        }
        // Recorded as it is: the record and its evidence are the point.
        Action::Decide { .. } => {}
        Action::Adjust { flag, value } => {
            let current = match (state.phase, state.stage) {
                (Phase::Running | Phase::Paused | Phase::Hypercare, Some(i)) => i,
                _ => return Err(wrong_phase()),
            };
            let stage = plan.stages.get(current).map_or("", |s| s.id.as_str());
            let Some(allowed) = plan.adjustable(flag, stage) else {
                return Err(Refusal::Unknown(format!(
                    "{flag} cannot be adjusted in stage {stage} (the plan's [[adjust]] names what may be)"
                )));
            };
            check_adjustment(
                allowed,
                plan.stages.get(current).and_then(|s| s.flags.get(flag)),
                value,
            )
            .map_err(Refusal::Invalid)?;
            next.adjusted.insert(
                flag.clone(),
                Adjustment {
                    value: value.clone(),
                    by: mark.clone(),
                },
            );
        }
        Action::Ack { alert, .. } => {
            if next.open_alerts.remove(alert).is_none() {
                let open: Vec<&str> = state.open_alerts.keys().map(String::as_str).collect();
                return Err(Refusal::Unknown(format!(
                    "no open alert \"{alert}\" (open: {})",
                    if open.is_empty() {
                        "none".to_string()
                    } else {
                        open.join(", ")
                    }
                )));
            }
        }
        Action::Alert { trigger } => {
            let alerting = plan
                .triggers
                .iter()
                .any(|t| &t.id == trigger && t.action == crate::plan::TriggerAction::Alert);
            if !alerting {
                return Err(Refusal::Unknown(format!("no alert trigger \"{trigger}\"")));
            }
            // Open until acknowledged; a firing while open keeps the first time.
            next.open_alerts
                .entry(trigger.clone())
                .or_insert(OpenAlert {
                    since: request.at,
                    by: request.actor.name.clone(),
                    kind: OpenAlertKind::Alert,
                });
        }
        Action::Approve => {
            let target = match (state.phase, state.stage) {
                (Phase::NotStarted, _) => 0,
                (Phase::Running | Phase::Paused, Some(i)) => i + 1,
                _ => return Err(wrong_phase()),
            };
            let Some(stage) = plan.stages.get(target) else {
                return Err(Refusal::Unknown("there is no next stage to approve".into()));
            };
            let Some(signoff) = plan.signoffs.iter().find(|s| s.stage == stage.id) else {
                return Err(Refusal::Unknown(format!(
                    "entering {} needs no sign-off",
                    stage.id
                )));
            };
            if !signoff.roles.contains(&request.actor.role) {
                return Err(Refusal::Forbidden {
                    action: format!("approve {}", stage.id),
                    role: request.actor.role,
                    allowed: signoff
                        .roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let approvals = next.approvals.entry(stage.id.clone()).or_default();
            if let Some(earlier) = approvals
                .iter()
                .find(|m| m.by.person_key() == request.actor.person_key())
            {
                // One person, however they came in (a token bound to their email, a session).
                let who = if earlier.by.name == request.actor.name {
                    request.actor.name.clone()
                } else {
                    format!(
                        "{} (the same person as {})",
                        request.actor.name, earlier.by.name
                    )
                };
                return Err(Refusal::Duplicate(format!(
                    "{who} already approved {}",
                    stage.id
                )));
            }
            // One approval per role when the sign-off asks each role: a second lead does
            // not stand in for product.
            if signoff.each && approvals.iter().any(|m| m.by.role == request.actor.role) {
                return Err(Refusal::Duplicate(format!(
                    "{} has already approved {} for the {} role; it needs each of {}",
                    approvals
                        .iter()
                        .find(|m| m.by.role == request.actor.role)
                        .map_or("someone", |m| m.by.name.as_str()),
                    stage.id,
                    request.actor.role.as_str(),
                    signoff
                        .roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            approvals.push(mark.clone());
        }
    }
    next.version = state.version + 1;
    let record = AuditRecord {
        at: request.at,
        actor: request.actor.clone(),
        action: action.clone(),
        reason: mark.reason,
        before: state.summary(plan),
        after: next.summary(plan),
    };
    Ok((next, record))
}

/// A tick of a recurring item ticks the earliest of its occurrences that has opened and is
/// not ticked (a late one first); an untick takes back the latest tick. Occurrences run
/// through the hypercare only.
fn check_occurrence(
    state: &RolloutState,
    next: &mut RolloutState,
    (list, item): (&str, &crate::plan::Item),
    checking: bool,
    mark: &Mark,
) -> Result<(), Refusal> {
    let whole = format!("{list}/{}", item.id);
    let ticked = |n: u32| {
        state
            .checked
            .contains_key(&crate::plan::occurrence_key(list, &item.id, n))
    };
    let last = item.occurrences;
    if !checking {
        let latest = (1..=last).rev().find(|n| ticked(*n));
        let Some(n) = latest else {
            return Err(Refusal::Duplicate(format!("{whole} is not checked")));
        };
        next.checked
            .remove(&crate::plan::occurrence_key(list, &item.id, n));
        return Ok(());
    }
    let Some(since) = state.hypercare_since else {
        return Err(Refusal::Invalid(format!(
            "{whole} recurs through the hypercare, which has not begun"
        )));
    };
    let open = item.occurrence_at(since, mark.at).unwrap_or(0);
    let Some(n) = (1..=open).find(|n| !ticked(*n)) else {
        return Err(Refusal::Duplicate(format!(
            "{whole}: every occurrence so far is checked (occurrence {} opens later)",
            open + 1
        )));
    };
    next.checked
        .insert(crate::plan::occurrence_key(list, &item.id, n), mark.clone());
    Ok(())
}

pub(super) fn enter(plan: &Plan, state: &mut RolloutState, stage: usize, at: Millis) {
    state.stage = Some(stage);
    state.stage_entered_at = Some(at);
    state.manual_only = false;
    // Items due after a stage's entry (`live+15m`) count from its latest.
    if let Some(s) = plan.stages.get(stage) {
        state.entered.insert(s.id.clone(), at);
    }
    state.overrides.clear();
    state.adjusted.clear();
}

/// Whether `value` fits an `[[adjust]]` entry and the type the stage gives the flag.
fn check_adjustment(
    allowed: &crate::plan::Adjustable,
    stage_value: Option<&FlagValue>,
    value: &FlagValue,
) -> Result<(), String> {
    let flag = &allowed.flag;
    let same_type = match (stage_value, value) {
        (None, _) => true,
        (Some(a), b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    };
    if !same_type {
        return Err(format!(
            "{flag} is {} in this stage: an adjustment must be of the same kind",
            stage_value.map(|v| v.to_string()).unwrap_or_default()
        ));
    }
    match value {
        FlagValue::Number(n) => {
            if !n.is_finite() {
                return Err(format!("{flag} must be a finite number"));
            }
            if !allowed.values.is_empty() {
                return Err(format!(
                    "{flag} takes one of: {}",
                    allowed.values.join(", ")
                ));
            }
            if allowed.min.is_some_and(|lo| *n < lo) || allowed.max.is_some_and(|hi| *n > hi) {
                return Err(format!(
                    "{flag} must be within {} to {}",
                    allowed.min.map_or("any".into(), |v| v.to_string()),
                    allowed.max.map_or("any".into(), |v| v.to_string())
                ));
            }
        }
        FlagValue::Text(t) => {
            if allowed.min.is_some() || allowed.max.is_some() {
                return Err(format!("{flag} takes a number"));
            }
            if t.len() > 256 {
                return Err(format!("{flag} takes at most 256 bytes of text"));
            }
            if !allowed.values.is_empty() && !allowed.values.iter().any(|v| v == t) {
                return Err(format!(
                    "{flag} takes one of: {}",
                    allowed.values.join(", ")
                ));
            }
        }
        FlagValue::Bool(_) => {
            if allowed.min.is_some() || allowed.max.is_some() || !allowed.values.is_empty() {
                return Err(format!("{flag} takes a number or one of its named values"));
            }
        }
    }
    Ok(())
}
