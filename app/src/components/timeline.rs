//! The audit log, newest first: who did what, in which role, why, and what changed. Decisions
//! stand out, and the list can be narrowed to decisions, actions, checks or alerts.

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
        Action::Adjust { flag, value } => format!("{flag} = {value}"),
        Action::Ack { alert, .. } => alert.clone(),
        Action::Check { list, item } | Action::Uncheck { list, item } => format!("{list}/{item}"),
        _ => String::new(),
    }
}

/// What the timeline can be narrowed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    All,
    /// Judgements: decisions recorded, overrides, sign-offs.
    Decisions,
    /// What moved the rollout or its flags.
    Actions,
    Checks,
    /// What the system recorded, and what people said to it.
    Alerts,
}

impl Show {
    const ALL: [Show; 5] = [
        Show::All,
        Show::Decisions,
        Show::Actions,
        Show::Checks,
        Show::Alerts,
    ];

    fn label(self) -> &'static str {
        match self {
            Show::All => "All",
            Show::Decisions => "Decisions",
            Show::Actions => "Actions",
            Show::Checks => "Checks",
            Show::Alerts => "Alerts",
        }
    }

    fn takes(self, action: &Action) -> bool {
        match self {
            Show::All => true,
            Show::Decisions => matches!(
                action,
                Action::Decide { .. } | Action::Override { .. } | Action::Approve
            ),
            Show::Actions => matches!(
                action,
                Action::Start
                    | Action::Progress
                    | Action::AutoProgress { .. }
                    | Action::Pause
                    | Action::Resume
                    | Action::Kill
                    | Action::StepBack
                    | Action::Close
                    | Action::Schedule { .. }
                    | Action::Adjust { .. }
            ),
            Show::Checks => matches!(action, Action::Check { .. } | Action::Uncheck { .. }),
            Show::Alerts => matches!(
                action,
                Action::Alert { .. }
                    | Action::Ack { .. }
                    | Action::Timebox { .. }
                    | Action::PlanChanged
            ),
        }
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
    let showing = RwSignal::new(Show::All);
    view! {
        <section class="panel">
            <h2>"Timeline"</h2>
            <div class="timeline-filter" role="group" aria-label="Show in the timeline">
                {Show::ALL.into_iter().map(|s| view! {
                    <button
                        data-testid=format!("timeline-{}", s.label().to_lowercase())
                        aria-pressed=move || (showing.get() == s).to_string()
                        on:click=move |_| showing.set(s)
                    >{s.label()}</button>
                }).collect_view()}
            </div>
            <ol class="timeline" data-testid="timeline">
                {move || {
                    let show = showing.get();
                    entries
                        .get()
                        .into_iter()
                        .filter(|e| show.takes(&e.record.action))
                        .map(|e| entry(e, snapshot))
                        .collect::<Vec<_>>()
                }}
            </ol>
        </section>
    }
}
