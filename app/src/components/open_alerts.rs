//! Alerts and automatic kills nobody has acknowledged yet, first thing on the rollout page and
//! on the wall, with how long each has been open; a role the plan lets acknowledge gets an Ack
//! button (the wall and share links get none), which asks what the alert turned out to be
//! (real, a false positive, expected, or not known yet: the report counts them) and why.
//! Acknowledged, it leaves the list and stops escalating to the next channel.

use cutover_core::rollout::{OpenAlert, OpenAlertKind};
use cutover_core::snapshot::{Snapshot, Tick};
use cutover_core::time::Span;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Me};
use crate::components::reason_dialog::ReasonDialog;

#[component]
pub fn OpenAlerts(
    /// The signed-in user, when this screen may act (not the wall, not a share link).
    me: Option<Me>,
    #[prop(into)] snapshot: Signal<Option<Snapshot>>,
    /// Its server time says how long each alert has been open.
    #[prop(into)]
    tick: Signal<Option<Tick>>,
) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let may_ack = {
        let me = me.clone();
        move || {
            me.as_ref().is_some_and(|me| {
                snapshot
                    .get()
                    .is_some_and(|s| me.any_of(&s.plan.permissions.ack))
            })
        }
    };
    let csrf = StoredValue::new(me.map(|m| m.csrf).unwrap_or_default());
    // The alert whose acknowledgement is being written, and what it turned out to be.
    let acking = RwSignal::new(None::<(String, String)>);
    let outcome = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let confirm = Callback::new(move |reason: String| {
        let Some((rollout, alert)) = acking.get_untracked() else {
            return;
        };
        let outcome = Some(outcome.get_untracked()).filter(|o| !o.is_empty());
        let reason = Some(reason.trim().to_string()).filter(|r| !r.is_empty());
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            let result = api::ack(&rollout, &alert, outcome, reason, &csrf.get_value()).await;
            busy.set(false);
            match result {
                Ok(()) => acking.set(None),
                Err(e) => error.set(Some(e)),
            }
        });
    });
    let row = move |rollout: String, id: String, open: OpenAlert, now: i64, may: bool| {
        let what = match open.kind {
            OpenAlertKind::Alert => format!("ALERT {id}"),
            OpenAlertKind::Kill => "KILL".to_string(),
        };
        let since = Span((now - open.since).max(0)).human();
        let button = may.then(|| {
            let (rollout, id) = (rollout.clone(), id.clone());
            view! {
                <button data-testid=format!("ack-{id}") on:click=move |_| {
                    outcome.set(String::new());
                    acking.set(Some((rollout.clone(), id.clone())));
                }>
                    "Acknowledge…"
                </button>
            }
        });
        view! {
            <li data-testid=format!("open-alert-{id}")>
                <strong>"⚠ " {what}</strong>
                " · open " {since} " · by " {open.by} " · unacknowledged "
                {button}
            </li>
        }
    };
    // The dialog stands apart from the list: a new snapshot redraws the list, never a dialog
    // someone is typing in.
    let dialog = move || {
        acking.get().map(|(_, alert)| {
            view! {
                <ReasonDialog
                    name="ack"
                    title=format!("Acknowledge {alert}: you are on it, and it stops escalating")
                    confirm="Acknowledge"
                    reason_required=false
                    busy=busy
                    on_confirm=confirm
                    on_cancel=Callback::new(move |_| acking.set(None))
                >
                    <label for="ack-outcome">"What is it? (the report counts them)"</label>
                    <select id="ack-outcome" data-testid="ack-outcome" on:change=move |ev| outcome.set(event_target_value(&ev))>
                        <option value="" selected>"Not known yet"</option>
                        <option value="real">"A real problem"</option>
                        <option value="false_positive">"A false positive (the alert needs work)"</option>
                        <option value="expected">"Expected (a known job or test)"</option>
                    </select>
                </ReasonDialog>
            }
        })
    };
    let list = move || {
        let s = snapshot.get()?;
        if s.state.open_alerts.is_empty() {
            return None;
        }
        let now = tick.get().map_or(s.at, |t| t.frame.at.max(s.at));
        let may = may_ack();
        let rollout = s.plan.id.clone();
        let rows = s
            .state
            .open_alerts
            .into_iter()
            .map(|(id, open)| row(rollout.clone(), id, open, now, may))
            .collect_view();
        Some(view! {
            <section class="panel open-alerts" data-testid="open-alerts" role="alert">
                <h2>"Open alerts"</h2>
                <ul>{rows}</ul>
                {move || error.get().map(|e| view! { <p class="error">{e}</p> })}
            </section>
        })
    };
    view! { {list} {dialog} }
}
