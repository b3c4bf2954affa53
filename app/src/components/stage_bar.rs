//! The rollout's position: every stage in order with its traffic, the current one marked,
//! and the state in words (never colour alone).

use cutover_core::plan::Plan;
use cutover_core::rollout::{Mark, Phase};
use cutover_core::snapshot::{Health, Snapshot, Tick};
use cutover_core::time::Span;
use leptos::prelude::*;

/// `by lee (lead) at 14:02:11: reason`.
fn who(plan: &Plan, mark: &Mark) -> String {
    let reason = mark
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!(
        "by {} ({}) at {}{reason}",
        mark.by.name,
        plan.role_title(&mark.by.role),
        crate::clock::hms(mark.at)
    )
}

/// The war room's clock: where now stands from T-0, what is overdue (a word and a shape, not
/// colour alone), what is due next, and a stage past its timebox. Judged by core's
/// `schedule::clock` at the server's time of the newest tick.
#[component]
fn ClockLine(
    #[prop(into)] snapshot: Signal<Option<Snapshot>>,
    #[prop(into)] tick: Signal<Option<Tick>>,
) -> impl IntoView {
    let clock = Memo::new(move |_| {
        let s = tick.with(|t| snapshot.get().map(|s| s.with_tick(t.as_ref())))?;
        let clock = cutover_core::schedule::clock(&s.plan, &s.state, s.at);
        Some((clock.label(s.at), clock, s.at))
    });
    let t_label = move || clock.get().and_then(|(label, _, _)| label);
    let overdue = move || {
        let n = clock.get().map_or(0, |(_, c, _)| c.overdue().count());
        (n > 0).then(|| format!("▲ {n} OVERDUE"))
    };
    let next = move || {
        let (_, c, at) = clock.get()?;
        let next = c.next()?;
        let when = next
            .due
            .map(|d| format!(" (in {})", Span((d - at).max(0)).human()))
            .unwrap_or_default();
        Some(format!("next: {} {}{when}", next.text, next.when()))
    };
    let timebox = move || {
        let over = clock.get()?.1.overrun?;
        Some(format!("⏱ TIMEBOX: {}", over.reason()))
    };
    view! {
        <div class="clock-line">
            <span class="t-clock" data-testid="t-clock">{t_label}</span>
            <span class="overdue-count" data-testid="overdue-count">{overdue}</span>
            <span class="next-due" data-testid="next-due">{next}</span>
            <span class="timebox" data-testid="timebox">{timebox}</span>
        </div>
    }
}

/// Stages, current stage, traffic, health and state; who killed or paused it, when and why;
/// how long it has been in this stage.
#[component]
pub fn StageBar(
    /// The latest snapshot.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
    /// The latest tick: health follows the gates and triggers every second.
    #[prop(into)]
    tick: Signal<Option<Tick>>,
) -> impl IntoView {
    // Health as the server's rules judge it (core), on the newest gate and trigger statuses.
    let health = Memo::new(move |_| {
        let summary = tick.with(|t| snapshot.get().map(|s| s.with_tick(t.as_ref()).summary()))?;
        Some((
            summary.health,
            summary.stage_entered_at.map(|t| Span(summary.at - t)),
            summary.health_reason,
        ))
    });
    // A word and a shape as well as a colour, to be read from across the room.
    let health_view = move || {
        health.get().map(|(h, _, why)| {
            let (text, class) = match h {
                Health::Healthy => ("● HEALTHY", "health healthy"),
                Health::Overdue => ("◷ OVERDUE", "health overdue"),
                Health::Degraded => ("▲ DEGRADED", "health degraded"),
                Health::Critical => ("■ CRITICAL", "health critical"),
                Health::Killed => ("✕ KILLED", "health killed"),
            };
            view! {
                <span class=class data-testid="health">{text}</span>
                {why.map(|w| view! { <span class="health-why" data-testid="health-why">{w}</span> })}
            }
        })
    };
    let in_stage = move || {
        let Some(s) = snapshot.get() else {
            return String::new();
        };
        match (s.state.phase, health.get()) {
            (Phase::Running | Phase::Paused, Some((_, Some(span), _))) => {
                format!("in stage {}", span.human())
            }
            // The watch after launch: how long is left before it may be closed.
            (Phase::Hypercare, _) => match (s.plan.hypercare, s.state.hypercare_since) {
                (Some(watch), Some(since)) => {
                    let left = Span((since + watch.0 - s.at).max(0));
                    if left.0 > 0 {
                        format!("hypercare: {} left of {}", left.human(), watch.human())
                    } else {
                        format!("hypercare of {} done: ready to close", watch.human())
                    }
                }
                _ => String::new(),
            },
            _ => String::new(),
        }
    };
    let phase = move || snapshot.get().map(|s| s.state.phase);
    let phase_text = move || match phase() {
        Some(Phase::NotStarted) => "NOT STARTED",
        Some(Phase::Running) => "RUNNING",
        Some(Phase::Paused) => "PAUSED",
        Some(Phase::Killed) => "KILLED",
        Some(Phase::Hypercare) => "HYPERCARE",
        Some(Phase::Completed) => "COMPLETED",
        None => "…",
    };
    let phase_class = move || match phase() {
        Some(Phase::Killed) => "phase killed",
        Some(Phase::Paused) => "phase paused",
        Some(Phase::Running | Phase::Hypercare | Phase::Completed) => "phase running",
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
            .and_then(|s| s.state.killed.as_ref().map(|m| who(&s.plan, m)))
    };
    let paused = move || {
        snapshot
            .get()
            .and_then(|s| s.state.paused.as_ref().map(|m| who(&s.plan, m)))
    };
    view! {
        <section class="panel stagebar">
            <div class="state-line">
                <span class=phase_class data-testid="phase">{phase_text}</span>
                <span class="traffic" data-testid="traffic">
                    {move || snapshot.get().map(|s| format!("{}% traffic", s.traffic))}
                </span>
                {health_view}
                <span class="in-stage" data-testid="in-stage">{in_stage}</span>
                <span class="killed-by" data-testid="killed-by">{killed}</span>
                <span class="paused-by" data-testid="paused-by">{paused}</span>
            </div>
            <ClockLine snapshot tick />
            <ol class="stages">{stages}</ol>
        </section>
    }
}
