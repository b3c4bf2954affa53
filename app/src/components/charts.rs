//! Every chart the plan gets, with the range picker: the live stream's frames for the last 15
//! minutes, or the history fetched from the server.

use cutover_core::chart::Marker;
use cutover_core::series::Frame;
use cutover_core::snapshot::{Snapshot, Tick};
use leptos::prelude::*;

use crate::api;
use crate::components::chart::Chart;

/// Chart ranges a person can pick; the first is the live stream's own.
const RANGES: [&str; 5] = ["15m", "1h", "6h", "24h", "7d"];

/// Every chart the plan gets, over the chosen range: the live stream's frames for 15 minutes,
/// otherwise the history fetched from the server every 10 seconds.
#[component]
pub fn Charts(
    id: String,
    #[prop(into)] snapshot: Signal<Option<Snapshot>>,
    #[prop(into)] tick: Signal<Option<Tick>>,
    #[prop(into)] markers: Signal<Vec<Marker>>,
    wall: bool,
    /// A marker picked: its audit entry's seq.
    on_mark: Callback<i64>,
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
    // A range dragged out on any chart (absolute, ms): every chart shows it until reset.
    let zoom = RwSignal::new(None::<(i64, i64)>);
    // The moment under the pointer on any chart: every chart marks it and says its values.
    let cursor = RwSignal::new(None::<i64>);
    let history = RwSignal::new(None::<Frame>);
    let error = RwSignal::new(None::<String>);
    let generation = StoredValue::new(0u32);
    Effect::new(move |_| {
        let chosen = range.get();
        let zoomed = zoom.get();
        generation.update_value(|g| *g += 1);
        history.set(None);
        error.set(None);
        if chosen == RANGES[0] && zoomed.is_none() {
            return;
        }
        let mine = generation.get_value();
        let id = id.clone();
        // Stops when another range is chosen or the page has gone (signed out, navigated):
        // `try_` reads, as the charts' values may be disposed while this sleeps.
        let current = move || generation.try_get_value() == Some(mine);
        leptos::task::spawn_local(async move {
            while current() {
                let fetched = match zoomed {
                    Some((from, to)) => api::history_between(&id, from, to).await,
                    None => api::history(&id, chosen).await,
                };
                match fetched {
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
                // A zoomed range is fixed: fetched once.
                if zoomed.is_some() {
                    return;
                }
                gloo_timers::future::TimeoutFuture::new(10_000).await;
            }
        });
    });
    let frame = Memo::new(move |_| {
        if range.get() == RANGES[0] && zoom.get().is_none() {
            tick.with(|t| t.as_ref().map(|t| t.frame.clone()))
        } else {
            history.get()
        }
    });
    // The server's time as of the newest tick: how long ago a hovered moment was, zoomed or not.
    let now = Memo::new(move |_| tick.with(|t| t.as_ref().map(|t| t.frame.at)));
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
                            class:chosen=move || range.get() == r && zoom.get().is_none()
                            aria-pressed=move || (range.get() == r && zoom.get().is_none()).to_string()
                            data-testid=format!("range-{r}")
                            on:click=move |_| {
                                zoom.set(None);
                                range.set(r);
                            }
                        >{r}</button>
                    }
                }).collect_view()}
                <span class="range-note" data-testid="range-note">{move || match (range.get(), error.get(), zoom.get()) {
                    (_, Some(e), _) => format!("cannot load history: {e}"),
                    (_, None, Some((from, to))) => format!(
                        "{} to {}, zoomed (drag on a chart to zoom again)",
                        crate::clock::hms(from),
                        crate::clock::hms(to)
                    ),
                    (r, None, None) if r == RANGES[0] => "last 15 minutes, live".to_string(),
                    (r, None, None) => format!("last {r}, refreshed every 10 s"),
                }}</span>
                <Show when=move || zoom.get().is_some()>
                    <button class="range" data-testid="zoom-reset" on:click=move |_| zoom.set(None)>"Reset zoom"</button>
                </Show>
            </div>
        })}
        <div class="charts">
            <For each=shown key=|c| c.id.clone() children=move |spec| view! {
                <Chart spec frame markers wall on_mark cursor now
                    on_zoom=Callback::new(move |r| zoom.set(Some(r)))
                    clock_axis=Signal::derive(move || zoom.get().is_some()) />
            } />
        </div>
    }
}
