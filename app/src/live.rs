//! The one live connection to a rollout's stream. The browser's EventSource reconnects by
//! itself; this turns its events into signals (the state after every action, the tick every
//! second) and reports whether the connection is up.

use cutover_core::snapshot::{Snapshot, Tick};
use futures::StreamExt;
use futures::stream::select;
use gloo_net::eventsource::futures::EventSource;
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
    spawn_local(async move {
        let url = format!("/api/rollouts/{rollout}/stream");
        let Ok(mut source) = EventSource::new(&url) else {
            live.connection.set(Connection::Down);
            return;
        };
        let (Ok(states), Ok(ticks)) = (source.subscribe("state"), source.subscribe("tick")) else {
            live.connection.set(Connection::Down);
            return;
        };
        let mut events = select(states, ticks);
        while let Some(message) = events.next().await {
            match message {
                Ok((kind, event)) => {
                    let Some(text) = event.data().as_string() else {
                        continue;
                    };
                    if kind == "state" {
                        if let Ok(s) = serde_json::from_str::<Snapshot>(&text) {
                            live.snapshot.set(Some(s));
                        }
                    } else if let Ok(t) = serde_json::from_str::<Tick>(&text) {
                        live.tick.set(Some(t));
                    }
                    live.connection.set(Connection::Live);
                    live.last_event.set(js_sys::Date::now());
                }
                // The EventSource retries on its own; show that we are between connections.
                Err(_) => live.connection.set(Connection::Down),
            }
        }
        source.close();
    });
    live
}
