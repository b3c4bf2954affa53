//! The one live connection to a rollout's stream: its events become signals (the state after
//! every action, the tick every second), it reports whether the connection is up, and it
//! reconnects with backoff when the browser's EventSource gives up.
//!
//! The stream sends one whole state and tick, then each second a delta against the tick before
//! (`cutover_core::delta`) and after each action an update (the state without the plan). A delta for a tick this page does not hold (an event lost or out
//! of order) is a gap: the page says so and opens the stream again, which starts whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cutover_core::delta::{self, TickDelta};
use cutover_core::snapshot::{Snapshot, Tick, Update as StateUpdate};
use futures::StreamExt;
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;

use source::{Event, EventStream};

pub mod source;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Down,
}

/// Live signals of one rollout.
#[derive(Clone, Copy)]
pub struct LiveRollout {
    pub snapshot: RwSignal<Option<Snapshot>>,
    pub tick: RwSignal<Option<Tick>>,
    pub connection: RwSignal<Connection>,
    /// Browser time (ms) when the last event arrived, for "last update N s ago".
    pub last_event: RwSignal<f64>,
    /// The newest resync: browser time (ms) and why the page started again from whole data.
    pub resync: RwSignal<Option<(f64, String)>>,
}

/// Opens the stream for `rollout`.
pub fn connect(rollout: String) -> LiveRollout {
    let live = LiveRollout {
        snapshot: RwSignal::new(None),
        tick: RwSignal::new(None),
        connection: RwSignal::new(Connection::Connecting),
        last_event: RwSignal::new(0.0),
        resync: RwSignal::new(None),
    };
    // The EventSource does not report a dead server to named-event listeners, so watch the
    // clock: ticks come every second, and none for five means the connection is down.
    if let Ok(handle) = set_interval_with_handle(
        move || {
            let quiet = js_sys::Date::now() - live.last_event.get_untracked() > 5_000.0;
            if quiet && live.connection.get_untracked() == Connection::Live {
                live.connection.set(Connection::Down);
            }
        },
        std::time::Duration::from_secs(1),
    ) {
        on_cleanup(move || handle.clear());
    }
    // Set when the page that owns this stream goes away: the loop closes its connection.
    let stopped = Arc::new(AtomicBool::new(false));
    {
        let stopped = stopped.clone();
        on_cleanup(move || stopped.store(true, Ordering::Relaxed));
    }
    spawn_local(async move {
        // The stream the page's boot script opened before the app started, already holding
        // the first events: the first chart needs no round trip of its own.
        let mut early = crate::boot::stream(&rollout).await.map(EventStream::adopt);
        let url = format!("/api/rollouts/{rollout}/stream");
        // The browser retries a dropped connection by itself, but gives up for good on an
        // error status (a proxy's 502 during a deploy, a 401 once the session ends). Then this
        // opens a new one, waiting 1, 2, 4 ... up to 30 s between tries.
        let mut backoff_ms = 1_000;
        // When the stream was last opened again at once after a gap: at most once in 10 s, so
        // a stream that keeps gapping backs off like any other failure.
        let mut reopened_at = f64::MIN;
        // Gaps with no change applied between them: a page that cannot follow the server's
        // changes (a newer server's format) reloads instead of resyncing forever.
        let mut gaps_in_a_row = 0u32;
        while !stopped.load(Ordering::Relaxed) {
            let opened = match early.take() {
                Some(stream) => {
                    mark_first("cutover:stream-adopted");
                    Some(stream)
                }
                None => {
                    mark_first("cutover:stream-opened");
                    EventStream::open(&url)
                }
            };
            // Set on a gap: open the stream again at once, without backing off.
            let mut gap = false;
            // Set when the server ends the stream for the browser to reconnect: the error the
            // browser fires then is no outage to show.
            let mut renewing = false;
            // A whole state waits here for the whole tick the server sends right after it, so
            // the page renders and lays out both at once, not twice (a first chart sooner).
            let mut held: Option<Snapshot> = None;
            if let Some(mut events) = opened {
                loop {
                    if stopped.load(Ordering::Relaxed) || events.is_closed() {
                        break;
                    }
                    // Wake at least every 2 s to notice a closed source or a page that has gone.
                    let next = events.next();
                    let timeout =
                        TimeoutFuture::new(if held.is_some() { HOLD_STATE_MS } else { 2_000 });
                    futures::pin_mut!(next);
                    let message = match futures::future::select(next, timeout).await {
                        futures::future::Either::Left((Some(message), _)) => message,
                        futures::future::Either::Left((None, _)) => break,
                        futures::future::Either::Right(_) => {
                            show_held(live, &mut held);
                            continue;
                        }
                    };
                    match message {
                        Event::Message(kind, text) => {
                            mark_first(if kind == "state" {
                                "cutover:state-received"
                            } else {
                                "cutover:event-received"
                            });
                            match receive(live, &kind, &text, &mut held) {
                                Received::Renewing => renewing = true,
                                Received::Fresh => {
                                    renewing = false;
                                    live.connection.set(Connection::Live);
                                    live.last_event.set(js_sys::Date::now());
                                    // Whole data arrives after every reopen; only a change
                                    // applied shows the stream can be followed.
                                    if kind == "delta" || kind == "update" {
                                        gaps_in_a_row = 0;
                                    }
                                    if gaps_in_a_row == 0 {
                                        backoff_ms = 1_000;
                                    }
                                }
                                Received::Unreadable => leptos::logging::warn!(
                                    "cannot read a {kind} event: reload the page"
                                ),
                                Received::Gap(reason) => {
                                    leptos::logging::warn!("resync: {reason}");
                                    gaps_in_a_row += 1;
                                    if gaps_in_a_row >= 3 {
                                        leptos::logging::warn!(
                                            "three gaps in a row: reloading the page"
                                        );
                                        if let Some(window) = web_sys::window() {
                                            let _ = window.location().reload();
                                        }
                                    }
                                    live.resync.set(Some((js_sys::Date::now(), reason)));
                                    gap = true;
                                    break;
                                }
                            }
                        }
                        // Between connections: the EventSource is retrying, or has given up.
                        Event::Error if renewing => {}
                        Event::Error => live.connection.set(Connection::Down),
                    }
                }
                drop(events);
                show_held(live, &mut held);
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if gap && js_sys::Date::now() - reopened_at > 10_000.0 {
                    reopened_at = js_sys::Date::now();
                    continue;
                }
            }
            live.connection.set(Connection::Down);
            // A session that has ended cannot reconnect: back to the sign-in page.
            if let Ok(None) = crate::api::whoami().await {
                if let Some(window) = web_sys::window() {
                    let _ = window.location().reload();
                }
                break;
            }
            TimeoutFuture::new(backoff_ms).await;
            backoff_ms = (backoff_ms * 2).min(30_000);
        }
    });
    live
}

/// Marks the first time this page reaches `name` (`cutover:state`, `cutover:tick`) on the
/// browser's performance timeline, where the share-link bench reads where a first load spends
/// its time. Once per name and page: a wall screen open for days keeps no growing list.
pub fn mark_first(name: &'static str) {
    thread_local! {
        static MARKED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let first = MARKED.with_borrow_mut(|marked| {
        let first = !marked.contains(&name);
        if first {
            marked.push(name);
        }
        first
    });
    if first && let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

/// How long a whole state waits for the tick that follows it before it is shown alone.
const HOLD_STATE_MS: u32 = 100;

/// Shows a whole state held for its tick, if one is.
fn show_held(live: LiveRollout, held: &mut Option<Snapshot>) {
    if let Some(snapshot) = held.take() {
        live.snapshot.set(Some(snapshot));
        mark_first("cutover:state-shown");
    }
}

enum Received {
    Fresh,
    Unreadable,
    /// The server is ending the stream for the browser to reconnect.
    Renewing,
    /// The stream must start again whole, for this reason.
    Gap(String),
}

/// Applies one event to the signals; a whole state goes to `held` until the next event, which
/// shows it first. Only what parses counts as fresh: a server speaking a newer format than
/// this page must not look live over frozen numbers.
fn receive(live: LiveRollout, kind: &str, text: &str, held: &mut Option<Snapshot>) -> Received {
    if kind == "state" {
        return match serde_json::from_str::<Snapshot>(text) {
            Ok(s) => {
                mark_first("cutover:state-parsed");
                // A newer whole state replaces one still held.
                *held = Some(s);
                Received::Fresh
            }
            Err(_) => Received::Unreadable,
        };
    }
    show_held(live, held);
    match kind {
        // The state after an action, without the plan this page holds.
        "update" => {
            let Ok(update) = serde_json::from_str::<StateUpdate>(text) else {
                return Received::Unreadable;
            };
            let mut applied = false;
            live.snapshot.update(|snapshot| {
                if let Some(snapshot) = snapshot {
                    applied = snapshot.apply(update);
                }
            });
            if applied {
                Received::Fresh
            } else {
                Received::Gap("a state change arrived before the whole state".into())
            }
        }
        "tick" => match serde_json::from_str::<Tick>(text) {
            Ok(t) => {
                mark_first("cutover:tick-parsed");
                live.tick.set(Some(t));
                mark_first("cutover:tick-shown");
                Received::Fresh
            }
            Err(_) => Received::Unreadable,
        },
        "delta" => {
            let Ok(d) = serde_json::from_str::<TickDelta>(text) else {
                return Received::Unreadable;
            };
            let mut applied = Err(format!(
                "a change for tick {} arrived before any whole tick",
                d.base
            ));
            live.tick.update(|tick| {
                if let Some(tick) = tick {
                    applied = delta::apply(tick, &d).map_err(|gap| gap.to_string());
                }
            });
            match applied {
                Ok(()) => Received::Fresh,
                Err(reason) => Received::Gap(reason),
            }
        }
        // The stream reached its lifetime: the browser reconnects by itself in half a second
        // with its last event id, missing nothing.
        "renew" => Received::Renewing,
        // The server dropped events this page was too slow for; a whole state follows.
        _ => {
            let reason = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_string))
                .unwrap_or_else(|| "the server started this stream again".into());
            live.resync.set(Some((js_sys::Date::now(), reason)));
            Received::Fresh
        }
    }
}
