//! The one live connection to a rollout's stream. The browser's EventSource reconnects by
//! itself; this turns its frames into a signal and reports whether the connection is up.

use cutover_core::snapshot::Tick;
use futures::StreamExt;
use gloo_net::eventsource::futures::EventSource;
use leptos::prelude::*;
use leptos::task::spawn_local;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Down,
}

/// Opens the stream for `rollout`; returns the latest tick and the connection state.
pub fn connect(rollout: String) -> (ReadSignal<Option<Tick>>, ReadSignal<Connection>) {
    let (frame, set_frame) = signal(None::<Tick>);
    let (connection, set_connection) = signal(Connection::Connecting);
    spawn_local(async move {
        let url = format!("/api/rollouts/{rollout}/stream");
        let Ok(mut source) = EventSource::new(&url) else {
            set_connection.set(Connection::Down);
            return;
        };
        let Ok(mut frames) = source.subscribe("tick") else {
            set_connection.set(Connection::Down);
            return;
        };
        while let Some(message) = frames.next().await {
            match message {
                Ok((_, event)) => {
                    let parsed = event
                        .data()
                        .as_string()
                        .and_then(|text| serde_json::from_str::<Tick>(&text).ok());
                    if let Some(parsed) = parsed {
                        set_frame.set(Some(parsed));
                        set_connection.set(Connection::Live);
                    }
                }
                // The EventSource retries on its own; show that we are between connections.
                Err(_) => set_connection.set(Connection::Down),
            }
        }
        source.close();
    });
    (frame, connection)
}
