//! Every rollout as a card: stage and traffic, health in words and colour, killed badge, gates
//! passing, time in stage. Refreshed every two seconds.

use cutover_core::rollout::Phase;
use cutover_core::snapshot::{Health, Summary};
use cutover_core::time::Span;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::components::freshness::Freshness;

fn health_word(h: Health) -> (&'static str, &'static str) {
    match h {
        Health::Healthy => ("HEALTHY", "health healthy"),
        Health::Degraded => ("DEGRADED", "health degraded"),
        Health::Critical => ("CRITICAL", "health critical"),
        Health::Killed => ("KILLED", "health killed"),
    }
}

fn stage_text(s: &Summary) -> String {
    match s.phase {
        Phase::NotStarted => "not started".to_string(),
        Phase::Completed => "completed".to_string(),
        Phase::Hypercare => format!("hypercare at {}", s.stage.clone().unwrap_or_default()),
        Phase::Paused => format!("PAUSED at {}", s.stage.clone().unwrap_or_default()),
        _ => s.stage.clone().unwrap_or_default(),
    }
}

/// One rollout's card. The element stays while its numbers change, so a keyboard user's
/// focus on it survives every refresh.
fn card(id: String, list: RwSignal<Vec<Summary>>) -> impl IntoView {
    let summary = {
        let id = id.clone();
        Memo::new(move |_| list.with(|l| l.iter().find(|s| s.id == id).cloned()))
    };
    let read = move |f: fn(&Summary) -> String| {
        move || summary.with(|s| s.as_ref().map(f).unwrap_or_default())
    };
    let title = read(|s| s.title.clone());
    let health = move || summary.with(|s| s.as_ref().map(|s| health_word(s.health)));
    let stage = read(|s| format!("{} · ", stage_text(s)));
    let traffic = read(|s| format!("{}%", s.traffic));
    let gates = read(|s| format!("gates {} of {} passing", s.gates_passing, s.gates_total));
    let kpis = read(|s| {
        s.kpis
            .iter()
            .map(|k| format!("{} {}", k.label, k.display_value()))
            .collect::<Vec<_>>()
            .join(" · ")
    });
    let in_stage = read(|s| {
        s.stage_entered_at
            .map(|t| format!("in stage {}", Span(s.at - t).human()))
            .unwrap_or_default()
    });
    view! {
        <a class="card" href=format!("/r/{id}") data-testid=format!("card-{id}")>
            <div class="card-head">
                <span class="card-title">{title}</span>
                <span
                    class=move || health().map_or("health", |(_, c)| c)
                    data-testid=format!("health-{id}")
                >
                    {move || health().map_or("", |(w, _)| w)}
                </span>
            </div>
            <div class="card-stage">{stage} <strong>{traffic}</strong></div>
            <div class="card-gates">{gates}</div>
            <div class="card-kpis" data-testid=format!("kpis-{id}")>{kpis}</div>
            <div class="card-time">{in_stage}</div>
        </a>
    }
}

/// The overview of every rollout the viewer may see.
#[component]
pub fn Overview(
    /// The first list, already fetched.
    initial: Vec<Summary>,
) -> impl IntoView {
    let list = RwSignal::new(initial);
    // When the last refresh succeeded: the header says so, and turns red when it is old.
    let refreshed = RwSignal::new(js_sys::Date::now());
    let refresh = move || {
        spawn_local(async move {
            // Every summary carries its time, so every refresh is a change: set it as is.
            if let Ok(fresh) = api::rollouts().await {
                list.set(fresh);
                refreshed.set(js_sys::Date::now());
            }
        });
    };
    if let Ok(handle) = set_interval_with_handle(refresh, std::time::Duration::from_secs(2)) {
        on_cleanup(move || handle.clear());
    }
    let ids = move || list.with(|l| l.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
    view! {
        <header>
            <h1>"cutover"</h1>
            <span class="rollout">"All rollouts"</span>
            <Freshness last_event=refreshed />
        </header>
        <main>
            <div class="cards" data-testid="overview">
                <For each=ids key=|id| id.clone() let:id>
                    {card(id, list)}
                </For>
            </div>
        </main>
    }
}
