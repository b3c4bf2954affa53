//! One rollout's page: picked by the URL (`/r/{id}`), connected to its live stream, showing
//! the live numbers and charts. The wall screen and share-link sessions get the same page
//! without controls.

use std::time::Duration;

use cutover_core::series::Series;
use cutover_core::snapshot::Tick;
use leptos::prelude::*;

use crate::api::{self, Me};
use crate::components::action_bar::ActionBar;
use crate::components::actuators::Actuators;
use crate::components::after_kill::AfterKill;
use crate::components::channels::Channels;
use crate::components::charts::Charts;
use crate::components::checklists::Checklists;
use crate::components::failing_now::FailingNow;
use crate::components::flags_in_force::FlagsInForce;
use crate::components::freshness::Freshness;
use crate::components::gate_board::GateBoard;
use crate::components::guidance::GuidanceNow;
use crate::components::open_alerts::OpenAlerts;
use crate::components::record::Record;
use crate::components::share::ShareLink;
use crate::components::stage_bar::StageBar;
use crate::components::timeline::Timeline;
use crate::live::{self, Connection};

/// The first series whose id ends with `suffix` (`.count`, `.p95`).
/// The first series in the tick that draws `part` (`p95`, `count`) of a metric.
fn series(tick: &Option<Tick>, part: &str) -> Option<Series> {
    tick.as_ref()?
        .frame
        .series
        .iter()
        .find(|s| cutover_core::chart::series_part(&s.id) == part)
        .cloned()
}

/// One rollout's live view: state, live numbers, chart, gate board, and (for roles that may)
/// the actions.
#[component]
pub fn Dashboard(
    id: String,
    /// The title from the list of rollouts, if the page had it; else the stream's says it.
    title: Option<String>,
    me: Me,
    wall: bool,
) -> impl IntoView {
    crate::live::mark_first("cutover:dashboard");
    let live = live::connect(id.clone());
    // The audit log and the chart markers (stage changes, kills, overrides, alerts), both
    // refetched on every new state version.
    let audit = RwSignal::new(Vec::<cutover_core::audit::AuditEntry>::new());
    let markers = RwSignal::new(Vec::<cutover_core::chart::Marker>::new());
    // The entries behind the markers, and the one whose record is open.
    let marked = RwSignal::new(Vec::<cutover_core::audit::AuditEntry>::new());
    let shown = RwSignal::new(None::<i64>);
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
                    if let Ok((list, entries)) = api::chart_marks(&id).await
                        && markers.with_untracked(|m| m != &list)
                    {
                        markers.set(list);
                        marked.set(entries);
                    }
                });
            }
        });
    }
    let (tick, connection) = (live.tick, live.connection);
    let requests = Memo::new(move |_| series(&tick.get(), "count"));
    let p95 = Memo::new(move |_| series(&tick.get(), "p95"));
    let latest = |s: Option<Series>| {
        s.and_then(|s| s.points.last().and_then(|p| p.v))
            .map_or("—".to_string(), |v| format!("{v:.0}"))
    };
    // What sits below the charts is built once the first frame with the charts has been drawn,
    // not in that frame: a first visit (a share link on a phone) sees its charts sooner.
    let below = RwSignal::new(false);
    let snapshot = live.snapshot;
    Effect::new(move |_| {
        let data = tick.with(Option::is_some) || snapshot.with(Option::is_some);
        if data && !below.get_untracked() {
            // A task queued from a frame's callbacks runs after that frame has rendered.
            request_animation_frame(move || {
                set_timeout(
                    move || {
                        below.try_set(true);
                    },
                    Duration::ZERO,
                )
            });
            // A hidden tab draws no frames: the rest comes anyway.
            set_timeout(
                move || {
                    below.try_set(true);
                },
                Duration::from_millis(500),
            );
        }
    });
    // Share-link sessions and the wall screen get no controls at all.
    let controls = me.rollout.is_none() && !wall;
    // A share link's session: a stakeholder, often on a phone.
    let shared = me.rollout.is_some() && !wall;
    view! {
        <header>
            // Back to every rollout, for whoever may see more than this one.
            {if me.rollout.is_none() {
                view! { <h1><a href="/" data-testid="home">"cutover"</a></h1> }.into_any()
            } else {
                view! { <h1>"cutover"</h1> }.into_any()
            }}
            <span class="rollout" data-testid="rollout-title">{move || {
                live.snapshot
                    .with(|s| s.as_ref().map(|s| s.plan.title.clone()))
                    .or_else(|| title.clone())
                    .unwrap_or_default()
            }}</span>
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
            <Freshness last_event=live.last_event resync=live.resync replicas=Signal::derive(move || tick.with(|t| t.as_ref().and_then(Tick::replica_lag))) />
            {(me.rollout.is_some()).then(|| view! { <span class="readonly" data-testid="read-only">"read-only"</span> })}
            // Ways around: the same rollout on the wall, and a link for stakeholders (for who
            // may make one).
            {controls.then(|| {
                let wall_href = format!("/r/{}/wall", cutover_core::route::segment(&id));
                let may_share = me.any_of(&[cutover_core::role::Role::Lead, cutover_core::role::Role::Admin]);
                view! {
                    <nav class="page-links" aria-label="This rollout elsewhere">
                        <a href=wall_href data-testid="wall-link">"Wall view"</a>
                        {may_share.then(|| view! { <a href="#share" data-testid="share-jump">"Share read-only…"</a> })}
                    </nav>
                }
            })}
        </header>
        <main class:wall=wall>
            {move || live.snapshot.with(|s| s.as_ref().and_then(|s| s.plan_mismatch.clone())).map(|why| view! {
                <section class="panel plan-mismatch" role="alert" data-testid="plan-mismatch">
                    <strong>"PLAN MISMATCH: read-only but for the kill. "</strong>{why}
                </section>
            })}
            <OpenAlerts me=controls.then(|| me.clone()) snapshot=live.snapshot tick=live.tick />
            <StageBar snapshot=live.snapshot tick=live.tick />
            {(!wall && !shared).then(|| view! { <AfterKill snapshot=live.snapshot /> })}
            <FlagsInForce snapshot=live.snapshot tick=live.tick />
            {wall.then(|| view! { <GuidanceNow snapshot=live.snapshot tick=live.tick /> })}
            {controls.then(|| view! { <ActionBar me=me.clone() snapshot=live.snapshot tick=live.tick /> })}
            {(!wall).then(|| view! { <FailingNow tick=live.tick /> })}
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
            <Charts id=id.clone() snapshot=live.snapshot tick=live.tick markers=markers wall=wall on_mark=Callback::new(move |seq| shown.set(Some(seq))) />
            <Show when=move || below.get()>
            <Record entries=marked shown=shown snapshot=live.snapshot />
            {if shared {
                // A stakeholder's first screen keeps state, stage, health and the charts; the
                // engineering detail (expressions, receivers, checklists, the raw timeline)
                // folds away until asked for.
                view! {
                    <details class="panel share-details" data-testid="share-details">
                        <summary>"Details: gates, actuators, checklists, timeline"</summary>
                        <GateBoard snapshot=live.snapshot tick=live.tick guidance=false wall=false />
                        <Actuators snapshot=live.snapshot />
                        <Channels snapshot=live.snapshot />
                        <Checklists me=None snapshot=live.snapshot tick=live.tick />
                        <Timeline entries=audit snapshot=live.snapshot />
                    </details>
                }
                .into_any()
            } else {
                view! {
                    <GateBoard snapshot=live.snapshot tick=live.tick guidance=!wall wall=wall />
                    {(!wall).then(|| view! {
                        <Actuators snapshot=live.snapshot />
                        <Channels snapshot=live.snapshot />
                        <Checklists me=controls.then(|| me.clone()) snapshot=live.snapshot tick=live.tick />
                        <Timeline entries=audit snapshot=live.snapshot />
                        {controls.then(|| view! { <ShareLink me=me.clone() rollout=id.clone() /> })}
                    })}
                }
                .into_any()
            }}
            </Show>
        </main>
    }
}
