//! Fan-out of a rollout's live events to every viewer on a bounded broadcast channel: a
//! viewer that falls behind loses the backlog (and gets a fresh snapshot), never slows others.

use std::sync::atomic::{AtomicU64, Ordering};

use cutover_core::snapshot::{Snapshot, Tick};
use tokio::sync::broadcast;

/// Events a viewer may fall behind before it is resent the current state instead.
pub const CLIENT_BUFFER: usize = 16;

/// What the stream carries: a tick every second, the rollout's state on every action.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Tick(Box<Tick>),
    State(Box<Snapshot>),
}

impl LiveEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Tick(_) => "tick",
            LiveEvent::State(_) => "state",
        }
    }

    pub fn json(&self) -> String {
        match self {
            LiveEvent::Tick(t) => serde_json::to_string(t),
            LiveEvent::State(s) => serde_json::to_string(s),
        }
        .unwrap_or_default()
    }
}

pub struct Live {
    sender: broadcast::Sender<(u64, LiveEvent)>,
    next_id: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(CLIENT_BUFFER);
        Live {
            sender,
            next_id: AtomicU64::new(1),
        }
    }
}

impl Live {
    /// Sends an event to every viewer; returns its id.
    pub fn send(&self, event: LiveEvent) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send((id, event));
        id
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(u64, LiveEvent)> {
        self.sender.subscribe()
    }

    pub fn viewers(&self) -> usize {
        self.sender.receiver_count()
    }
}
