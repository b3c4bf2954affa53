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
        Health::Overdue => ("OVERDUE", "health overdue"),
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

/// A trend's polyline in a 120 x 24 box (gaps skipped), and ", now N" for its label.
fn spark_points(values: &[Option<f64>]) -> (String, String) {
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let (lo, hi) = known
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    if !lo.is_finite() {
        return (String::new(), String::new());
    }
    let span = if hi - lo > f64::EPSILON { hi - lo } else { 1.0 };
    let last = values.len().saturating_sub(1).max(1) as f64;
    let points = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.map(|v| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 / last * 120.0,
                    22.0 - (v - lo) / span * 20.0
                )
            })
        })
        .collect::<Vec<_>>()
        .join(" ");
    let now = values
        .iter()
        .rev()
        .flatten()
        .next()
        .map(|v| format!(", now {}", cutover_core::unit::tick(*v)))
        .unwrap_or_default();
    (now, points)
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
    // Stage k of n, in words and as a bar of n steps (done, current, to come).
    let progress = read(|s| match s.stage_index {
        Some(i) => format!("stage {} of {}", i + 1, s.stages),
        None => format!("{} stages", s.stages),
    });
    let steps = move || {
        summary.with(|s| {
            s.as_ref().map_or_else(Vec::new, |s| {
                (0..s.stages)
                    .map(|i| {
                        let class = match s.stage_index {
                            Some(c) if i < c => "step done",
                            Some(c) if i == c => "step current",
                            _ => "step",
                        };
                        view! { <span class=class></span> }
                    })
                    .collect::<Vec<_>>()
            })
        })
    };
    let blocker = read(|s| {
        s.blocker
            .as_ref()
            .map(|b| format!("blocked: {b}"))
            .unwrap_or_default()
    });
    let overdue = read(|s| match s.overdue {
        0 => String::new(),
        n => format!("▲ {n} OVERDUE"),
    });
    let alerts = read(|s| match (s.open_alerts.as_slice(), s.open_since) {
        ([], _) | (_, None) => String::new(),
        (ids, Some(since)) => format!(
            "⚠ OPEN, UNACKNOWLEDGED: {} · {}",
            ids.join(", "),
            Span((s.at - since).max(0)).human()
        ),
    });
    let trend = move || {
        summary.with(|s| {
            let t = s.as_ref()?.trend.clone()?;
            let (label, points) = spark_points(&t.values);
            // The newest value as a dot: a line needs two minutes of data, the dot one.
            let last = points.rsplit(' ').next().and_then(|p| p.split_once(','));
            let (cx, cy) = last.map_or((String::new(), String::new()), |(x, y)| (x.into(), y.into()));
            (!points.is_empty()).then(|| {
                let label = format!("{} over the last 15 minutes{label}", t.label);
                view! {
                    <svg class="spark card-spark" viewBox="0 0 120 24" width="120" height="24"
                        role="img" aria-label=label data-testid=format!("trend-{}", s.as_ref().map_or("", |s| s.id.as_str()))>
                        <polyline class="spark-line" points=points></polyline>
                        <circle class="spark-now" cx=cx cy=cy r="2.5"></circle>
                    </svg>
                }
            })
        })
    };
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
            <div class="card-progress" data-testid=format!("progress-{id}")>
                <span class="steps" aria-hidden="true">{steps}</span>
                <span>{progress}</span>
                {trend}
            </div>
            <div class="card-alerts" data-testid=format!("alerts-{id}")>{alerts}</div>
            <div class="card-overdue" data-testid=format!("overdue-{id}")>{overdue}</div>
            <div class="card-blocker" data-testid=format!("blocker-{id}")>{blocker}</div>
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
    // Rollouts with open, unacknowledged alerts first (oldest alert first), then as listed.
    let ids = move || {
        list.with(|l| {
            let mut order: Vec<(Option<i64>, usize, String)> = l
                .iter()
                .enumerate()
                .map(|(i, s)| (s.open_since, i, s.id.clone()))
                .collect();
            order.sort_by_key(|(since, i, _)| (since.is_none(), *since, *i));
            order.into_iter().map(|(_, _, id)| id).collect::<Vec<_>>()
        })
    };
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
