//! A stage past its `max_duration`.

use serde::{Deserialize, Serialize};

use super::*;
use crate::plan::Plan;
use crate::time::{Millis, Span};

/// A stage that has run past its `max_duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overrun {
    pub stage: String,
    pub max: Span,
    /// How long the stage has run.
    pub ran: Span,
    pub action: crate::plan::TriggerAction,
}

impl Overrun {
    pub fn reason(&self) -> String {
        format!(
            "stage {} has run {}, past its max_duration {}",
            self.stage,
            self.ran.human(),
            self.max.human()
        )
    }
}

/// The current stage's overrun at `now`, while someone is responsible for it (running or
/// paused; not after the last stage is done).
pub fn overrun(plan: &Plan, state: &RolloutState, now: Millis) -> Option<Overrun> {
    if !matches!(state.phase, Phase::Running | Phase::Paused) {
        return None;
    }
    let stage = plan.stages.get(state.stage?)?;
    let max = stage.max_duration?;
    let ran = Span(now.saturating_sub(state.stage_entered_at?));
    (ran > max).then(|| Overrun {
        stage: stage.id.clone(),
        max,
        ran,
        action: stage.on_max_duration,
    })
}
