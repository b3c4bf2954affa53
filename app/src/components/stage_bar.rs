//! The rollout's position: every stage in order with its traffic, the current one marked,
//! and the state in words (never colour alone).

use cutover_core::rollout::Phase;
use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;

/// Stages, current stage, traffic and state; who killed it and why when killed.
#[component]
pub fn StageBar(
    /// The latest snapshot.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
) -> impl IntoView {
    let phase = move || snapshot.get().map(|s| s.state.phase);
    let phase_text = move || match phase() {
        Some(Phase::NotStarted) => "NOT STARTED",
        Some(Phase::Running) => "RUNNING",
        Some(Phase::Paused) => "PAUSED",
        Some(Phase::Killed) => "KILLED",
        Some(Phase::Completed) => "COMPLETED",
        None => "…",
    };
    let phase_class = move || match phase() {
        Some(Phase::Killed) => "phase killed",
        Some(Phase::Paused) => "phase paused",
        Some(Phase::Running | Phase::Completed) => "phase running",
        _ => "phase",
    };
    let stages = move || {
        let Some(s) = snapshot.get() else {
            return Vec::new();
        };
        let current = s.state.stage;
        s.plan
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let mark = match current {
                    Some(c) if c == i => "stage current",
                    Some(c) if i < c => "stage done",
                    _ => "stage",
                };
                let traffic = if stage.shadow {
                    "shadow".to_string()
                } else {
                    format!("{}%", stage.traffic)
                };
                view! {
                    <li class=mark aria-current=move || (current == Some(i)).then_some("step")>
                        <span class="stage-name">{stage.title.clone()}</span>
                        <span class="stage-traffic">{traffic}</span>
                    </li>
                }
            })
            .collect::<Vec<_>>()
    };
    let killed = move || {
        snapshot
            .get()
            .and_then(|s| s.state.killed.clone())
            .map(|k| {
                format!(
                    "by {} ({}): {}",
                    k.by.name,
                    k.by.role,
                    k.reason.unwrap_or_default()
                )
            })
    };
    view! {
        <section class="panel stagebar">
            <div class="state-line">
                <span class=phase_class data-testid="phase">{phase_text}</span>
                <span class="traffic" data-testid="traffic">
                    {move || snapshot.get().map(|s| format!("{}% traffic", s.traffic))}
                </span>
                <span class="killed-by" data-testid="killed-by">{killed}</span>
            </div>
            <ol class="stages">{stages}</ol>
        </section>
    }
}
