//! The audit log, newest first: who did what, in which role, why, and what changed.

use cutover_core::audit::AuditEntry;
use cutover_core::rollout::{Action, StateSummary};
use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;

fn describe(state: &StateSummary) -> String {
    match &state.stage {
        Some(stage) => format!("{} at {stage} ({}%)", state.phase, state.traffic),
        None => format!("{} ({}%)", state.phase, state.traffic),
    }
}

/// What the action was about: a gate, a trigger, a checklist item, a decision, an alert.
fn target(action: &Action) -> String {
    match action {
        Action::Override { gate } => gate.clone(),
        Action::Alert { trigger } => trigger.clone(),
        Action::Decide { decision } => decision.as_str().to_string(),
        Action::Ack { alert, .. } => alert.clone(),
        Action::Check { list, item } | Action::Uncheck { list, item } => format!("{list}/{item}"),
        _ => String::new(),
    }
}

fn entry(e: AuditEntry, snapshot: Signal<Option<Snapshot>>) -> impl IntoView {
    let r = e.record;
    let action = r.action.name();
    let role = snapshot.with_untracked(|s| {
        s.as_ref().map_or_else(
            || r.actor.role.as_str().to_string(),
            |s| s.plan.role_title(&r.actor.role).to_string(),
        )
    });
    let who = format!("{} ({role})", r.actor.name);
    let reason = r.reason.map(|r| format!("“{r}”")).unwrap_or_default();
    let change = format!("{} → {}", describe(&r.before), describe(&r.after));
    let class = format!("event {action}");
    view! {
        <li class=class>
            <span class="when">{crate::clock::hms(r.at)}</span>
            <span class="what"><strong>{action}</strong> " " {target(&r.action)} " by " {who} " " {reason}</span>
            <span class="change">{change}</span>
        </li>
    }
}

/// The audit log of one rollout, as the dashboard fetched it.
#[component]
pub fn Timeline(
    /// Newest first; refetched by the dashboard whenever the state version changes.
    #[prop(into)]
    entries: Signal<Vec<AuditEntry>>,
    /// For the plan's titles of its own roles.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"Timeline"</h2>
            <ol class="timeline" data-testid="timeline">
                {move || entries.get().into_iter().map(|e| entry(e, snapshot)).collect::<Vec<_>>()}
            </ol>
        </section>
    }
}
