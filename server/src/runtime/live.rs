//! Fan-out of a rollout's live events to every viewer on a bounded broadcast channel: a
//! viewer that falls behind loses the backlog (and gets a fresh snapshot), never slows others.
//! Each event is serialised once, however many viewers there are, and the last few are kept
//! so a viewer that reconnects with `Last-Event-ID` gets exactly what it missed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cutover_core::snapshot::{Snapshot, Tick};
use tokio::sync::broadcast;

use crate::clock::lock;

/// Events a viewer may fall behind before it is resent the current state instead.
pub const CLIENT_BUFFER: usize = 16;
/// Events kept for resuming viewers: about a minute of ticks.
pub const HISTORY: usize = 64;

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

/// An event as sent: its sequence number, SSE name and JSON, shared by every viewer.
#[derive(Debug, Clone)]
pub struct Sent {
    pub seq: u64,
    pub name: &'static str,
    pub data: Arc<str>,
}

pub struct Live {
    sender: broadcast::Sender<Sent>,
    next_seq: AtomicU64,
    /// Names this process's ids: an id from before a restart never matches.
    epoch: u64,
    history: Mutex<VecDeque<Sent>>,
}

impl Default for Live {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(CLIENT_BUFFER);
        Live {
            sender,
            next_seq: AtomicU64::new(1),
            epoch: rand::random::<u32>() as u64,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }
}

impl Live {
    /// Sends an event to every viewer; returns its sequence number.
    pub fn send(&self, event: LiveEvent) -> u64 {
        let data: Arc<str> = event.json().into();
        // The history lock also orders sequence numbers with the history.
        let mut history = lock(&self.history);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let sent = Sent {
            seq,
            name: event.name(),
            data,
        };
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(sent.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(sent);
        seq
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Sent> {
        self.sender.subscribe()
    }

    /// The sequence number of the newest event sent (0 before the first).
    pub fn latest(&self) -> u64 {
        lock(&self.history).back().map_or(0, |s| s.seq)
    }

    /// The SSE id for sequence number `seq`.
    pub fn id(&self, seq: u64) -> String {
        format!("{:x}-{seq}", self.epoch)
    }

    /// The events after `last_event_id`, if it is one of this process's ids and nothing after
    /// it has been forgotten; `None` means the viewer must start again from a fresh state.
    pub fn since(&self, last_event_id: &str) -> Option<Vec<Sent>> {
        let (epoch, seq) = last_event_id.trim().split_once('-')?;
        if u64::from_str_radix(epoch, 16).ok()? != self.epoch {
            return None;
        }
        let seq: u64 = seq.parse().ok()?;
        let history = lock(&self.history);
        let newest = history.back().map_or(0, |s| s.seq);
        let oldest = history.front().map_or(newest + 1, |s| s.seq);
        // Resumable when the next event after `seq` is still held (or nothing came since).
        if seq > newest || seq + 1 < oldest {
            return None;
        }
        Some(history.iter().filter(|s| s.seq > seq).cloned().collect())
    }

    pub fn viewers(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(live: &Live) -> u64 {
        let frame = cutover_core::series::Frame {
            rollout: "r".into(),
            at: 0,
            step: 10,
            series: vec![],
        };
        live.send(LiveEvent::Tick(Box::new(Tick {
            frame,
            gates: vec![],
            triggers: vec![],
        })))
    }

    #[test]
    fn resume_gives_exactly_what_was_missed_while_it_is_held() {
        let live = Live::default();
        for _ in 0..10 {
            tick(&live);
        }
        let missed = live.since(&live.id(7)).unwrap();
        assert_eq!(missed.iter().map(|s| s.seq).collect::<Vec<_>>(), [8, 9, 10]);
        assert!(live.since(&live.id(10)).unwrap().is_empty(), "up to date");
        assert!(live.since(&live.id(11)).is_none(), "an id from the future");
        assert!(live.since("ffffffffff-3").is_none(), "another process's id");
        assert!(live.since("garbage").is_none());
        for _ in 0..HISTORY {
            tick(&live);
        }
        assert!(live.since(&live.id(7)).is_none(), "forgotten: start again");
        let oldest = live.latest() - HISTORY as u64;
        assert_eq!(live.since(&live.id(oldest)).unwrap().len(), HISTORY);
    }
}
