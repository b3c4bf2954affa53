//! A changed plan under a started rollout: mapped by stage id, recorded, or refused.

use super::*;
use crate::plan::Plan;
use crate::role::Role;
use crate::time::Millis;

/// What loading a changed plan does to a started rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// Nothing the world sees changes: same stage at the same place, same traffic and flags.
    Unchanged,
    /// The state maps onto the new plan; the record says what changed, for the audit log.
    Changed(RolloutState, AuditRecord),
}

/// Why a changed plan cannot take over a started rollout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error(
        "rollout {rollout} is {phase} at stage \"{stage}\", which the changed plan no longer has: \
         put the stage back, or finish or reset the rollout before removing it"
    )]
    StageRemoved {
        rollout: String,
        phase: String,
        stage: String,
    },
}

/// Maps a rollout's state from the plan it ran under (`old`) onto the plan now loaded (`new`),
/// by stage id rather than by position, so an edit that inserts or reorders stages never moves
/// traffic by itself. `edited` says the plan file changed at all (its hash, which counts the
/// actuators and channels browsers never see): every edit is a new state version with an
/// audit record, so what the actuators are sent, and where, never changes under one version
/// (re-pointing the kill webhook, or a kill's rollback flags edited under a killed rollout,
/// leaves a record). A stage that is gone is refused.
pub fn reconcile(
    old: &Plan,
    new: &Plan,
    state: &RolloutState,
    edited: bool,
    at: Millis,
) -> Result<Reconciled, ReconcileError> {
    let mut changes = Vec::new();
    let mut next = state.clone();
    if let Some(index) = state.stage
        && let Some(current) = old.stages.get(index)
    {
        let Some(new_index) = new.stages.iter().position(|s| s.id == current.id) else {
            return Err(ReconcileError::StageRemoved {
                rollout: new.id.clone(),
                phase: state.phase.to_string(),
                stage: current.id.clone(),
            });
        };
        let now = &new.stages[new_index];
        if new_index != index {
            changes.push(format!(
                "stage {} moved from #{} to #{} of {}",
                current.id,
                index + 1,
                new_index + 1,
                new.stages.len()
            ));
        }
        if now.traffic != current.traffic || now.shadow != current.shadow {
            changes.push(format!(
                "its traffic changed from {}% to {}%{}",
                current.traffic,
                now.traffic,
                if now.shadow { " (shadow)" } else { "" }
            ));
        }
        if now.flags != current.flags {
            changes.push("its flags changed".to_string());
        }
        if state.phase == Phase::Killed
            && old.rollback_flags(Some(index)) != new.rollback_flags(Some(new_index))
        {
            changes.push("what its kill publishes changed (the rollback flags)".to_string());
        }
        next.stage = Some(new_index);
    }
    if changes.is_empty() && !edited {
        return Ok(Reconciled::Unchanged);
    }
    if changes.is_empty() {
        changes.push(
            "nothing it publishes moved, but the plan did (gates, checklists, actuators or channels)"
                .to_string(),
        );
    }
    next.version += 1;
    let record = AuditRecord {
        at,
        actor: Actor {
            name: "plan file".into(),
            role: Role::System,
            ..Default::default()
        },
        action: Action::PlanChanged,
        reason: Some(format!(
            "the plan changed while the rollout was {}: {}",
            state.phase,
            changes.join("; ")
        )),
        before: state.summary(old),
        after: next.summary(new),
    };
    Ok(Reconciled::Changed(next, record))
}
