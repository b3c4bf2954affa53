//! Every rollout as a card: stage and traffic, health in words and colour, killed badge, gates
//! passing, time in stage. Refreshed every two seconds.

use cutover_core::rollout::Phase;
use cutover_core::snapshot::{Health, Summary};
use cutover_core::time::Span;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;

fn card(s: Summary) -> impl IntoView {
    let (word, class) = match s.health {
        Health::Healthy => ("HEALTHY", "health healthy"),
        Health::Degraded => ("DEGRADED", "health degraded"),
        Health::Critical => ("CRITICAL", "health critical"),
        Health::Killed => ("KILLED", "health killed"),
    };
    let stage = match s.phase {
        Phase::NotStarted => "not started".to_string(),
        Phase::Completed => "completed".to_string(),
        _ => s.stage.clone().unwrap_or_default(),
    };
    let in_stage = s
        .stage_entered_at
        .map(|t| format!("in stage {}", Span(s.at - t).human()));
    let kpis = s
        .kpis
        .iter()
        .map(|k| format!("{} {}", k.label, k.display_value()))
        .collect::<Vec<_>>()
        .join(" · ");
    view! {
        <a class="card" href=format!("/r/{}", s.id) data-testid=format!("card-{}", s.id)>
            <div class="card-head">
                <span class="card-title">{s.title.clone()}</span>
                <span class=class data-testid=format!("health-{}", s.id)>{word}</span>
            </div>
            <div class="card-stage">{stage} " · " <strong>{format!("{}%", s.traffic)}</strong></div>
            <div class="card-gates">{format!("gates {} of {} passing", s.gates_passing, s.gates_total)}</div>
            <div class="card-kpis" data-testid=format!("kpis-{}", s.id)>{kpis}</div>
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
    let refresh = move || {
        spawn_local(async move {
            if let Ok(fresh) = api::rollouts().await {
                list.set(fresh);
            }
        });
    };
    if let Ok(handle) = set_interval_with_handle(refresh, std::time::Duration::from_secs(2)) {
        on_cleanup(move || handle.clear());
    }
    view! {
        <header><h1>"cutover"</h1><span class="rollout">"All rollouts"</span></header>
        <main>
            <div class="cards" data-testid="overview">
                {move || list.get().into_iter().map(card).collect::<Vec<_>>()}
            </div>
        </main>
    }
}
