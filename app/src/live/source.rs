//! A server-sent event stream as a `Stream` of events, on the browser's `EventSource`: one
//! opened here, or the one the page's boot script opened before the app started, with the
//! events it held meanwhile (`crate::boot`).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use js_sys::{Array, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{EventSource, MessageEvent};

use crate::boot::EarlyStream;

/// The named events a rollout's stream sends, and `error`, which the browser fires when the
/// connection fails (it is retrying, or has given up and closed).
const KINDS: [&str; 7] = [
    "state", "update", "tick", "delta", "resync", "renew", "error",
];

pub enum Event {
    /// A named event with its data.
    Message(String, String),
    /// The connection failed.
    Error,
}

pub struct EventStream {
    source: EventSource,
    events: UnboundedReceiver<Event>,
    // Called by the browser (or the boot script) for as long as the source is open.
    _listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    _adopted: Option<Closure<dyn FnMut(String, JsValue)>>,
}

impl EventStream {
    pub fn open(url: &str) -> Option<Self> {
        let source = EventSource::new(url).ok()?;
        let (sender, events) = unbounded();
        let mut listeners = Vec::with_capacity(KINDS.len());
        for kind in KINDS {
            let sender = sender.clone();
            let listener = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                let data = e
                    .dyn_ref::<MessageEvent>()
                    .map_or(JsValue::UNDEFINED, MessageEvent::data);
                send(&sender, kind, data);
            });
            source
                .add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())
                .ok()?;
            listeners.push(listener);
        }
        Some(Self {
            source,
            events,
            _listeners: listeners,
            _adopted: None,
        })
    }

    /// Takes over the boot script's stream: first the events it held, then each one as it
    /// comes, through the hand-off's `to`.
    pub fn adopt(early: EarlyStream) -> Self {
        let EarlyStream { source, handoff } = early;
        let stream = &handoff;
        let (sender, events) = unbounded();
        if let Ok(queue) = Reflect::get(stream, &"queue".into()) {
            for item in Array::from(&queue).iter() {
                let item = Array::from(&item);
                send(
                    &sender,
                    &item.get(0).as_string().unwrap_or_default(),
                    item.get(1),
                );
            }
        }
        let to = Closure::<dyn FnMut(String, JsValue)>::new(move |kind: String, data| {
            send(&sender, &kind, data);
        });
        let _ = Reflect::set(stream, &"queue".into(), &Array::new());
        let _ = Reflect::set(stream, &"to".into(), to.as_ref());
        Self {
            source,
            events,
            _listeners: Vec::new(),
            _adopted: Some(to),
        }
    }

    /// The browser has given up on this connection (an error status): it will not retry.
    pub fn is_closed(&self) -> bool {
        self.source.ready_state() == EventSource::CLOSED
    }
}

fn send(sender: &UnboundedSender<Event>, kind: &str, data: JsValue) {
    let event = match (kind, data.as_string()) {
        ("error", _) => Event::Error,
        (_, Some(data)) => Event::Message(kind.to_string(), data),
        // A named event without text data is not one this stream sends.
        (_, None) => return,
    };
    let _ = sender.unbounded_send(event);
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.events).poll_next(cx)
    }
}

impl Drop for EventStream {
    // Closed before its listeners go: a closed source calls none of them.
    fn drop(&mut self) {
        self.source.close();
    }
}
