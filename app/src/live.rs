//! The one live connection to a rollout's stream: its events become signals (the state after
//! every action, the tick every second), it reports whether the connection is up, and it
//! reconnects with backoff when the browser's EventSource gives up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cutover_core::snapshot::{Snapshot, Tick};
use futures::StreamExt;
use futures::stream::select;
use gloo_net::eventsource::State as ReadyState;
use gloo_net::eventsource::futures::EventSource;
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;

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
}

/// Opens the stream for `rollout`.
pub fn connect(rollout: String) -> LiveRollout {
    let live = LiveRollout {
        snapshot: RwSignal::new(None),
        tick: RwSignal::new(None),
        connection: RwSignal::new(Connection::Connecting),
        last_event: RwSignal::new(0.0),
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
        let url = format!("/api/rollouts/{rollout}/stream");
        // The browser retries a dropped connection by itself, but gives up for good on an
        // error status (a proxy's 502 during a deploy, a 401 once the session ends). Then this
        // opens a new one, waiting 1, 2, 4 ... up to 30 s between tries.
        let mut backoff_ms = 1_000;
        while !stopped.load(Ordering::Relaxed) {
            let opened = EventSource::new(&url).ok().and_then(|mut source| {
                let states = source.subscribe("state").ok()?;
                let ticks = source.subscribe("tick").ok()?;
                Some((source, select(states, ticks)))
            });
            if let Some((source, mut events)) = opened {
                loop {
                    if stopped.load(Ordering::Relaxed) || source.state() == ReadyState::Closed {
                        break;
                    }
                    // Wake at least every 2 s to notice a closed source or a page that has gone.
                    let next = events.next();
                    let timeout = TimeoutFuture::new(2_000);
                    futures::pin_mut!(next);
                    let message = match futures::future::select(next, timeout).await {
                        futures::future::Either::Left((Some(message), _)) => message,
                        futures::future::Either::Left((None, _)) => break,
                        futures::future::Either::Right(_) => continue,
                    };
                    match message {
                        Ok((kind, event)) => {
                            let Some(text) = event.data().as_string() else {
                                continue;
                            };
                            // Only what parses counts as fresh: a server speaking a newer format
                            // than this page must not look live over frozen numbers.
                            let fresh = if kind == "state" {
                                serde_json::from_str::<Snapshot>(&text)
                                    .map(|s| live.snapshot.set(Some(s)))
                                    .is_ok()
                            } else {
                                serde_json::from_str::<Tick>(&text)
                                    .map(|t| live.tick.set(Some(t)))
                                    .is_ok()
                            };
                            if fresh {
                                live.connection.set(Connection::Live);
                                live.last_event.set(js_sys::Date::now());
                                backoff_ms = 1_000;
                            } else {
                                leptos::logging::warn!(
                                    "cannot read a {kind} event: reload the page"
                                );
                            }
                        }
                        // Between connections: the EventSource is retrying, or has given up.
                        Err(_) => live.connection.set(Connection::Down),
                    }
                }
                source.close();
                if stopped.load(Ordering::Relaxed) {
                    break;
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
