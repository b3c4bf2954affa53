//! The top-level component: picks the rollout from the URL (`/r/{id}`, else the first one),
//! connects to its live stream and shows the live numbers and chart.

use cutover_core::chart::Marker;
use cutover_core::series::Frame;
use cutover_core::series::Series;
use cutover_core::snapshot::{Snapshot, Tick};
use leptos::prelude::*;

use crate::api::{self, Me};
use crate::components::action_bar::ActionBar;
use crate::components::actuators::Actuators;
use crate::components::chart::Chart;
use crate::components::checklists::Checklists;
use crate::components::freshness::Freshness;
use crate::components::gate_board::GateBoard;
use crate::components::overview::Overview;
use crate::components::share::ShareLink;
use crate::components::sign_in::SignIn;
use crate::components::stage_bar::StageBar;
use crate::components::timeline::Timeline;
use crate::live::{self, Connection};
use crate::theme::ThemeToggle;

/// The whole app: signs the browser in if needed, then shows the dashboard.
#[component]
pub fn App() -> impl IntoView {
    crate::theme::provide();
    let me = RwSignal::new(None::<Me>);
    let checked = LocalResource::new(api::whoami);
    Effect::new(move |_| {
        if let Some(Ok(Some(found))) = checked.get() {
            me.set(Some(found));
        }
    });
    let on_signed_in = Callback::new(move |found: Me| me.set(Some(found)));
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || match (checked.get(), me.get()) {
                (_, Some(user)) => view! { <SignedIn me=user on_sign_out=Callback::new(move |_| me.set(None)) /> }.into_any(),
                (Some(Err(e)), None) => view! { <p class="error">"Cannot reach the server: " {e}</p> }.into_any(),
                (Some(_), None) => view! { <SignIn on_signed_in /> }.into_any(),
                (None, None) => view! { <p>"Loading…"</p> }.into_any(),
            }}
        </Transition>
    }
}

/// Everything a signed-in person sees.
#[component]
fn SignedIn(me: Me, on_sign_out: Callback<()>) -> impl IntoView {
    let rollouts = LocalResource::new(api::rollouts);
    let user = StoredValue::new(me.clone());
    let csrf = me.csrf.clone();
    let sign_out = move |_| {
        let csrf = csrf.clone();
        leptos::task::spawn_local(async move {
            let _ = api::sign_out(&csrf).await;
            on_sign_out.run(());
        });
    };
    let who = match &me.rollout {
        Some(_) => "stakeholder · read-only".to_string(),
        None => format!("{} · {}", me.name, me.role),
    };
    view! {
        <div class="who">
            <span data-testid="whoami">{who}</span>
            <ThemeToggle />
            <button class="link" data-testid="sign-out" on:click=sign_out>"Sign out"</button>
        </div>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                rollouts
                    .get()
                    .map(|result| match result {
                        Ok(list) => match wanted(&user.get_value()) {
                            Some(id) => match list.iter().find(|r| r.id == id) {
                                Some(r) => view! { <Dashboard id=r.id.clone() title=r.title.clone() me=user.get_value() wall=is_wall() /> }.into_any(),
                                None => view! { <p class="error">"No rollout \"" {id} "\" here."</p> }.into_any(),
                            },
                            None => view! { <Overview initial=list /> }.into_any(),
                        },
                        Err(e) => view! { <p class="error">"Cannot reach the server: " {e}</p> }.into_any(),
                    })
            }}
        </Transition>
    }
}

/// `/r/{id}/wall` or `?wall`: the view for a screen across the room.
fn is_wall() -> bool {
    let location = web_sys::window().map(|w| w.location());
    let path = location
        .as_ref()
        .and_then(|l| l.pathname().ok())
        .unwrap_or_default();
    let query = location
        .as_ref()
        .and_then(|l| l.search().ok())
        .unwrap_or_default();
    path.ends_with("/wall") || query.contains("wall")
}

/// The rollout the URL names (`/r/{id}`); a share-link session always gets its own.
fn wanted(me: &Me) -> Option<String> {
    if let Some(only) = &me.rollout {
        return Some(only.clone());
    }
    let path = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_default();
    path.strip_prefix("/r/")
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
}

/// The first series whose id ends with `suffix` (`.count`, `.p95`).
fn series(tick: &Option<Tick>, suffix: &str) -> Option<Series> {
    tick.as_ref()?
        .frame
        .series
        .iter()
        .find(|s| s.id == suffix || s.id.ends_with(suffix))
        .cloned()
}

/// One rollout's live view: state, live numbers, chart, gate board, and (for roles that may)
/// the actions.
#[component]
fn Dashboard(id: String, title: String, me: Me, wall: bool) -> impl IntoView {
    let live = live::connect(id.clone());
    // The audit log and the chart markers (stage changes, kills, overrides, alerts), both
    // refetched on every new state version.
    let audit = RwSignal::new(Vec::<serde_json::Value>::new());
    let markers = RwSignal::new(Vec::<cutover_core::chart::Marker>::new());
    let version = Memo::new(move |_| live.snapshot.get().map(|s| s.state.version));
    {
        let id = id.clone();
        Effect::new(move |_| {
            if version.get().is_some() {
                let id = id.clone();
                leptos::task::spawn_local(async move {
                    if let Ok(list) = api::audit(&id).await {
                        audit.set(list);
                    }
                    if let Ok(list) = api::chart_marks(&id).await
                        && markers.with_untracked(|m| m != &list)
                    {
                        markers.set(list);
                    }
                });
            }
        });
    }
    let (tick, connection) = (live.tick, live.connection);
    let requests = Memo::new(move |_| series(&tick.get(), ".count"));
    let p95 = Memo::new(move |_| series(&tick.get(), ".p95"));
    let latest = |s: Option<Series>| {
        s.and_then(|s| s.points.last().and_then(|p| p.v))
            .map_or("—".to_string(), |v| format!("{v:.0}"))
    };
    // Share-link sessions and the wall screen get no controls at all.
    let controls = me.rollout.is_none() && !wall;
    view! {
        <header>
            <h1>"cutover"</h1>
            <span class="rollout" data-testid="rollout-title">{title}</span>
            <span
                data-testid="connection"
                class=move || match connection.get() { Connection::Live => "conn live", _ => "conn down" }
            >
                {move || match connection.get() {
                    Connection::Connecting => "connecting",
                    Connection::Live => "live",
                    Connection::Down => "reconnecting",
                }}
            </span>
            <Freshness last_event=live.last_event />
            {(me.rollout.is_some()).then(|| view! { <span class="readonly" data-testid="read-only">"read-only"</span> })}
        </header>
        <main class:wall=wall>
            <StageBar snapshot=live.snapshot tick=live.tick />
            {controls.then(|| view! { <ActionBar me=me.clone() snapshot=live.snapshot tick=live.tick /> })}
            <div class="kpis">
                <div class="kpi">
                    <div class="label">"Requests, current 10 s"</div>
                    <div class="value" data-testid="live-requests">{move || latest(requests.get())}</div>
                </div>
                <div class="kpi">
                    <div class="label">"p95 latency, current 10 s (ms)"</div>
                    <div class="value" data-testid="live-p95">{move || latest(p95.get())}</div>
                </div>
            </div>
            <Charts id=id.clone() snapshot=live.snapshot tick=live.tick markers=markers wall=wall />
            <GateBoard snapshot=live.snapshot tick=live.tick />
            {(!wall).then(|| view! {
                <Actuators snapshot=live.snapshot />
                <Checklists me=controls.then(|| me.clone()) snapshot=live.snapshot tick=live.tick />
                <Timeline entries=audit />
                {controls.then(|| view! { <ShareLink me=me.clone() rollout=id.clone() /> })}
            })}
        </main>
    }
}

/// Chart ranges a person can pick; the first is the live stream's own.
const RANGES: [&str; 4] = ["15m", "1h", "6h", "24h"];

/// Every chart the plan gets, over the chosen range: the live stream's frames for 15 minutes,
/// otherwise the history fetched from the server every 10 seconds.
#[component]
fn Charts(
    id: String,
    #[prop(into)] snapshot: Signal<Option<Snapshot>>,
    #[prop(into)] tick: Signal<Option<Tick>>,
    #[prop(into)] markers: Signal<Vec<Marker>>,
    wall: bool,
) -> impl IntoView {
    let specs = Memo::new(move |_| {
        snapshot.with(|s| {
            s.as_ref()
                .map(|s| {
                    if wall {
                        cutover_core::chart::wall(&s.plan)
                    } else {
                        cutover_core::chart::charts(&s.plan)
                    }
                })
                .unwrap_or_default()
        })
    });
    let range = RwSignal::new(RANGES[0]);
    let history = RwSignal::new(None::<Frame>);
    let error = RwSignal::new(None::<String>);
    let generation = StoredValue::new(0u32);
    Effect::new(move |_| {
        let chosen = range.get();
        generation.update_value(|g| *g += 1);
        history.set(None);
        error.set(None);
        if chosen == RANGES[0] {
            return;
        }
        let mine = generation.get_value();
        let id = id.clone();
        // Stops when another range is chosen or the page has gone (signed out, navigated):
        // `try_` reads, as the charts' values may be disposed while this sleeps.
        let current = move || generation.try_get_value() == Some(mine);
        leptos::task::spawn_local(async move {
            while current() {
                match api::history(&id, chosen).await {
                    Ok(frame) if current() => {
                        history.try_set(Some(frame));
                        error.try_set(None);
                    }
                    Ok(_) => return,
                    Err(e) if current() => {
                        error.try_set(Some(e));
                    }
                    Err(_) => return,
                }
                gloo_timers::future::TimeoutFuture::new(10_000).await;
            }
        });
    });
    let frame = Memo::new(move |_| {
        if range.get() == RANGES[0] {
            tick.with(|t| t.as_ref().map(|t| t.frame.clone()))
        } else {
            history.get()
        }
    });
    let shown = move || specs.get();
    view! {
        {(!wall).then(|| view! {
            <div class="ranges" role="group" aria-label="Chart range">
                "Range: "
                {RANGES.iter().map(|r| {
                    let r = *r;
                    view! {
                        <button
                            class="range"
                            class:chosen=move || range.get() == r
                            aria-pressed=move || (range.get() == r).to_string()
                            data-testid=format!("range-{r}")
                            on:click=move |_| range.set(r)
                        >{r}</button>
                    }
                }).collect_view()}
                <span class="range-note" data-testid="range-note">{move || match (range.get(), error.get()) {
                    (_, Some(e)) => format!("cannot load history: {e}"),
                    (r, None) if r == RANGES[0] => "last 15 minutes, live".to_string(),
                    (r, None) => format!("last {r}, refreshed every 10 s"),
                }}</span>
            </div>
        })}
        <div class="charts">
            <For each=shown key=|c| c.id.clone() children=move |spec| view! { <Chart spec frame markers wall /> } />
        </div>
    }
}
