//! Alerts and automatic kills nobody has acknowledged yet, first thing on the rollout page and
//! on the wall, with how long each has been open; a role the plan lets acknowledge gets an Ack
//! button (the wall and share links get none). Acknowledged, it leaves the list and stops
//! escalating to the next channel.

use cutover_core::rollout::{OpenAlert, OpenAlertKind};
use cutover_core::snapshot::{Snapshot, Tick};
use cutover_core::time::Span;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Me};
use cutover_core::route::ActionRoute;

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
    let ack = move |rollout: String, alert: String| {
        error.set(None);
        spawn_local(async move {
            let result = api::act(
                &rollout,
                ActionRoute::Ack,
                &[&alert],
                Some("acknowledged in the app".into()),
                &csrf.get_value(),
            )
            .await;
            if let Err(e) = result {
                error.set(Some(e));
            }
        });
    };
    let row = move |rollout: String, id: String, open: OpenAlert, now: i64, may: bool| {
        let what = match open.kind {
            OpenAlertKind::Alert => format!("ALERT {id}"),
            OpenAlertKind::Kill => "KILL".to_string(),
        };
        let since = Span((now - open.since).max(0)).human();
        let button = may.then(|| {
            let (rollout, id) = (rollout.clone(), id.clone());
            view! {
                <button data-testid=format!("ack-{id}") on:click=move |_| ack(rollout.clone(), id.clone())>
                    "Acknowledge"
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
    move || {
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
    }
}
