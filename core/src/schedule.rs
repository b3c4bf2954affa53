//! The rollout's clock: T-0, the checklist items due relative to it, and stages that run past
//! their timebox. Pure: the time is always an argument, so the server, the CLI and the app
//! agree on what is overdue at a given moment.

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, TriggerAction};
use crate::rollout::RolloutState;
pub use crate::rollout::{Overrun, overrun};
use crate::time::{Millis, t_label};

/// Where an item with a due time stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueStatus {
    Done,
    /// Not done and its time has not come.
    Upcoming,
    /// Not done and its time has passed.
    Overdue,
}

/// A checklist item with a time: from T-0 or after a stage's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DueItem {
    pub list: String,
    pub item: String,
    pub text: String,
    /// Its time as written (`T-30m`, `live+15m`).
    pub label: String,
    /// Offset from T-0, or from its stage's entry, in milliseconds.
    pub offset: Millis,
    /// The stage whose latest entry it counts from (`None`: from T-0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Which occurrence of a recurring item (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<u32>,
    /// The wall time it is due, once T-0 is known.
    pub due: Option<Millis>,
    pub status: DueStatus,
}

impl DueItem {
    /// When it is due, as a sentence reads it: `at T+2h`, `15m after entering Live`,
    /// `1 of 7 (daily)`.
    pub fn when(&self) -> String {
        if self.stage.is_none() && self.occurrence.is_none() {
            format!("at {}", self.label)
        } else {
            self.label.clone()
        }
    }
}

/// The rollout's clock at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    pub t0: Option<Millis>,
    /// Every item with a time from T-0, earliest first.
    pub items: Vec<DueItem>,
    pub overrun: Option<Overrun>,
}

impl Clock {
    /// The next item due: the earliest whose time has not come and that is not done.
    pub fn next(&self) -> Option<&DueItem> {
        self.items.iter().find(|i| i.status == DueStatus::Upcoming)
    }

    pub fn overdue(&self) -> impl Iterator<Item = &DueItem> {
        self.items.iter().filter(|i| i.status == DueStatus::Overdue)
    }

    /// `T-12m 30s`, `T+1h 05m`: where `now` stands from T-0.
    pub fn label(&self, now: Millis) -> Option<String> {
        self.t0.map(|t0| t_label(now - t0))
    }
}

/// The clock of `state` under `plan` at `now`.
pub fn clock(plan: &Plan, state: &RolloutState, now: Millis) -> Clock {
    let mut items = Vec::new();
    for list in &plan.checklists {
        for item in &list.items {
            if item.every.is_some() {
                items.extend(occurrences(list, item, state, now));
                continue;
            }
            let (Some(when), Some(label)) = (list.due(item), list.due_phase(item)) else {
                continue;
            };
            let due = due_at(&when, plan, state);
            let (offset, stage) = match when.clone() {
                crate::plan::Due::FromT0(offset) => (offset, None),
                crate::plan::Due::AfterEntry { stage, after } => (after, Some(stage)),
            };
            let status = if state.item_done(list, item, 0) {
                DueStatus::Done
            } else if due.is_some_and(|d| now > d) {
                DueStatus::Overdue
            } else {
                DueStatus::Upcoming
            };
            items.push(DueItem {
                list: list.id.clone(),
                item: item.id.clone(),
                text: item.text.clone(),
                label: when.label(plan, label),
                offset,
                stage,
                occurrence: None,
                due,
                status,
            });
        }
    }
    // Earliest first, those whose time is not known yet last; stable: items due at the same
    // time keep the plan's order.
    items.sort_by_key(|i| (i.due.unwrap_or(Millis::MAX), i.stage.is_some(), i.offset));
    Clock {
        t0: state.t0,
        items,
        overrun: overrun(plan, state, now),
    }
}

/// Where a recurring item stands: occurrences ticked of all, and the earliest open one not
/// yet ticked (what a tick would take), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurring {
    pub ticked: u32,
    pub total: u32,
    /// `daily`, `weekly`, `every 12h 00m`.
    pub every: String,
    pub open: Option<DueItem>,
}

/// `item`'s occurrences at `now`; `None` unless it recurs.
pub fn recurring(
    list: &crate::plan::Checklist,
    item: &crate::plan::Item,
    state: &RolloutState,
    now: Millis,
) -> Option<Recurring> {
    Some(Recurring {
        ticked: state.occurrences_ticked(&list.id, &item.id, 0),
        total: item.occurrences,
        every: item.every_text()?,
        open: occurrences(list, item, state, now).into_iter().next(),
    })
}

/// The wall time `due` falls on for `state`, once its anchor is known.
fn due_at(due: &crate::plan::Due, plan: &Plan, state: &RolloutState) -> Option<Millis> {
    match due {
        crate::plan::Due::FromT0(offset) => state.t0.map(|t0| t0.saturating_add(*offset)),
        crate::plan::Due::AfterEntry { stage, after } => {
            // A state written before entries were kept knows its current stage's.
            let current = state
                .stage
                .and_then(|i| plan.stages.get(i))
                .filter(|s| &s.id == stage)
                .and(state.stage_entered_at);
            let entered = state.entered.get(stage).copied().or(current)?;
            Some(entered.saturating_add(*after))
        }
    }
}

/// The open occurrences of a recurring item not yet ticked, in the hypercare: each due at
/// the end of its period, overdue past it.
fn occurrences(
    list: &crate::plan::Checklist,
    item: &crate::plan::Item,
    state: &RolloutState,
    now: Millis,
) -> Vec<DueItem> {
    let Some(since) = state.hypercare_since else {
        return Vec::new();
    };
    let open = item.occurrence_at(since, now).unwrap_or(0);
    let every = item.every_text().unwrap_or_default();
    (1..=open)
        .filter(|n| {
            !state
                .checked
                .contains_key(&crate::plan::occurrence_key(&list.id, &item.id, *n))
        })
        .filter_map(|n| {
            let due = item.occurrence_due(since, n)?;
            Some(DueItem {
                list: list.id.clone(),
                item: item.id.clone(),
                text: item.text.clone(),
                label: format!("{n} of {} ({every})", item.occurrences),
                offset: due - since,
                stage: None,
                occurrence: Some(n),
                due: Some(due),
                status: if now > due {
                    DueStatus::Overdue
                } else {
                    DueStatus::Upcoming
                },
            })
        })
        .collect()
}

/// Whether the evaluator must record an overrun now: past the timebox and not yet recorded
/// for this entry into the stage.
pub fn overrun_due(plan: &Plan, state: &RolloutState, now: Millis) -> Option<Overrun> {
    let over = overrun(plan, state, now)?;
    (!noted(state)).then_some(over)
}

/// An overrun recorded for this entry whose kill or step back has not happened yet (its
/// commit failed after the record's): the evaluator takes it again until the state moves.
pub fn overrun_action_pending(plan: &Plan, state: &RolloutState, now: Millis) -> Option<Overrun> {
    let over = overrun(plan, state, now)?;
    // A step back from the first stage is refused for good: not pending.
    let possible = match over.action {
        TriggerAction::Alert => false,
        TriggerAction::StepBack => state.stage.is_some_and(|i| i > 0),
        TriggerAction::Kill => true,
    };
    (noted(state) && possible).then_some(over)
}

fn noted(state: &RolloutState) -> bool {
    state.timebox_noted.is_some() && state.timebox_noted == state.stage_entered_at
}

#[cfg(test)]
mod tests;
