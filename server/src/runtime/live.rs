//! Fan-out of a rollout's live events to every viewer on a bounded broadcast channel: a
//! viewer that falls behind loses the backlog (and gets a fresh snapshot), never slows others.
//! Each event is rendered once, as the SSE bytes every viewer is sent (no copy per viewer),
//! and the last few are kept so a viewer that reconnects with `Last-Event-ID` gets exactly
//! what it missed.
//!
//! Ticks go out as deltas (`core::delta`): each names the tick before it, which every viewer
//! holds. The newest tick is kept whole for viewers that connect or fall behind. States after
//! actions go out as `update`s, without the plan every viewer got in its first state.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::body::Bytes;
use cutover_core::delta;
use cutover_core::snapshot::{Snapshot, Tick};
use tokio::sync::broadcast;

use crate::clock::lock;

/// Events a viewer may fall behind before it is resent the current state instead.
pub const CLIENT_BUFFER: usize = 16;
/// Events kept for resuming viewers: about a minute of ticks.
pub const HISTORY: usize = 64;

/// An event as sent: its sequence number and the SSE bytes every viewer gets.
#[derive(Debug, Clone)]
pub struct Sent {
    pub seq: u64,
    pub bytes: Bytes,
}

/// What every stream of a rollout is told, in order: the one channel a stream waits on, so an
/// open stream holds no timer, query or second channel of its own.
#[derive(Debug, Clone)]
pub enum Message {
    /// An event for every viewer.
    Event(Sent),
    /// The streams signed in under these sign-ins (`viewers::Watching::id`) must end: they were
    /// revoked or have expired. One message for all that ended at once.
    Ended(std::sync::Arc<[u64]>),
    /// The server is shutting down: every stream ends, so connections drain.
    Closing,
    /// Nothing was sent for a while: a comment, so proxies keep quiet streams open.
    KeepAlive,
}

/// The newest tick, whole: what a viewer starts from.
struct Newest {
    tick: Tick,
    /// The event sequence number it (or its delta) went out under.
    seq: u64,
    /// Its SSE bytes, rendered the first time a viewer needs them.
    rendered: Option<Bytes>,
}

struct History {
    events: VecDeque<Sent>,
    next_seq: u64,
}

pub struct Live {
    sender: broadcast::Sender<Message>,
    /// Names this process's ids: an id from before a restart never matches.
    epoch: u64,
    history: Mutex<History>,
    /// Held while a tick is made into a delta and sent, so ticks go out one at a time. Never
    /// held by an action's state event: a kill waits on nothing here.
    newest: Mutex<Option<Newest>>,
    /// Whether anything was sent since the last `keep_alive`.
    sent_lately: std::sync::atomic::AtomicBool,
}

impl Default for Live {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(CLIENT_BUFFER);
        Live {
            sender,
            epoch: rand::random::<u32>() as u64,
            history: Mutex::new(History {
                events: VecDeque::with_capacity(HISTORY),
                next_seq: 1,
            }),
            newest: Mutex::new(None),
            sent_lately: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Renders an SSE event: `data` is JSON, which holds no raw newline.
fn render(id: Option<&str>, name: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + name.len() + 48);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(name);
    out.push_str("\ndata: ");
    out.push_str(data);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// A named notice whose data is `{"reason": ...}`, sent to one viewer.
pub fn notice(name: &str, reason: &str) -> Bytes {
    render(
        None,
        name,
        &serde_json::json!({ "reason": reason }).to_string(),
    )
}

impl Live {
    /// Sends the rollout's state to every viewer, without the plan they hold (an `update`);
    /// returns its sequence number.
    pub fn send_state(&self, snapshot: &Snapshot) -> u64 {
        let json = serde_json::to_string(&snapshot.update()).unwrap_or_default();
        self.publish("update", &json).seq
    }

    /// Sends a tick to every viewer, as a delta against the one before when it can be said
    /// so, else whole; returns its sequence number. Ticks are numbered in the order sent.
    pub fn send_tick(&self, mut tick: Tick) -> u64 {
        let mut newest = lock(&self.newest);
        // Numbered from this process's epoch: a delta can never name a tick another
        // process (a restart, another replica) sent under the same number.
        tick.seq = newest
            .as_ref()
            .map_or((self.epoch << 32) | 1, |n| n.tick.seq + 1);
        let delta = newest.as_ref().and_then(|n| delta::diff(&n.tick, &tick));
        let (name, json) = match &delta {
            Some(d) => ("delta", serde_json::to_string(d)),
            None => ("tick", serde_json::to_string(&tick)),
        };
        let sent = self.publish(name, &json.unwrap_or_default());
        // A whole tick went out as the very event a newcomer needs: keep its bytes.
        let rendered = delta.is_none().then(|| sent.bytes.clone());
        *newest = Some(Newest {
            tick,
            seq: sent.seq,
            rendered,
        });
        sent.seq
    }

    /// The SSE bytes of an event; `seq` 0 (nothing sent yet) gives it no id.
    fn rendered(&self, name: &str, seq: u64, json: &str) -> Bytes {
        let id = (seq > 0).then(|| self.id(seq));
        render(id.as_deref(), name, json)
    }

    fn publish(&self, name: &str, json: &str) -> Sent {
        // The history lock orders sequence numbers with the history.
        let mut history = lock(&self.history);
        let seq = history.next_seq;
        history.next_seq += 1;
        let sent = Sent {
            seq,
            bytes: self.rendered(name, seq, json),
        };
        if history.events.len() == HISTORY {
            history.events.pop_front();
        }
        history.events.push_back(sent.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(Message::Event(sent.clone()));
        self.sent_lately
            .store(true, std::sync::atomic::Ordering::Relaxed);
        sent
    }

    /// Sends every stream a keep-alive comment if nothing was sent since the last call; returns
    /// whether it did. Called every few seconds (`viewers::run`), so a stream never needs a
    /// timer of its own.
    pub fn keep_alive(&self) -> bool {
        let quiet = !self
            .sent_lately
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if quiet {
            let _ = self.sender.send(Message::KeepAlive);
        }
        quiet
    }

    /// Ends the streams signed in under `sign_ins` (ids from `viewers::Watching`).
    pub fn send_ended(&self, sign_ins: std::sync::Arc<[u64]>) {
        let _ = self.sender.send(Message::Ended(sign_ins));
    }

    /// Ends every stream: the server is shutting down.
    pub fn send_closing(&self) {
        let _ = self.sender.send(Message::Closing);
    }

    /// The newest tick whole, as an SSE event under the sequence number it was sent with, or
    /// `None` before the first. With it, the newest sequence number sent, read together:
    /// every later event (delta or state) comes after it.
    pub fn newest_tick(&self) -> (Option<Bytes>, u64) {
        let mut newest = lock(&self.newest);
        let latest = self.latest();
        let Some(n) = newest.as_mut() else {
            return (None, latest);
        };
        if n.rendered.is_none() {
            let json = serde_json::to_string(&n.tick).unwrap_or_default();
            n.rendered = Some(self.rendered("tick", n.seq, &json));
        }
        (n.rendered.clone(), latest)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.sender.subscribe()
    }

    /// The sequence number of the newest event sent (0 before the first).
    pub fn latest(&self) -> u64 {
        lock(&self.history).next_seq - 1
    }

    /// The SSE id for sequence number `seq`.
    pub fn id(&self, seq: u64) -> String {
        format!("{:x}-{seq}", self.epoch)
    }

    /// The SSE event of a tick made for one viewer (before the evaluator's first), whole.
    pub fn tick_event(&self, tick: &Tick, seq: u64) -> Bytes {
        self.rendered(
            "tick",
            seq,
            &serde_json::to_string(tick).unwrap_or_default(),
        )
    }

    /// The SSE event of a state taken now, labelled with the newest sequence number sent
    /// before it was taken (it is at least that new).
    pub fn state_event(&self, snapshot: &Snapshot, seq: u64) -> Bytes {
        self.rendered(
            "state",
            seq,
            &serde_json::to_string(snapshot).unwrap_or_default(),
        )
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
        let newest = history.next_seq - 1;
        let oldest = history.events.front().map_or(newest + 1, |s| s.seq);
        // Resumable when the next event after `seq` is still held (or nothing came since).
        if seq > newest || seq + 1 < oldest {
            return None;
        }
        Some(
            history
                .events
                .iter()
                .filter(|s| s.seq > seq)
                .cloned()
                .collect(),
        )
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
        live.send_tick(Tick {
            seq: 0,
            frame,
            gates: vec![],
            triggers: vec![],
            replicas: vec![],
        })
    }

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    fn event(message: Message) -> Sent {
        match message {
            Message::Event(sent) => sent,
            other => panic!("not an event: {other:?}"),
        }
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

    /// Streams hear a keep-alive only when the rollout was quiet since the last call.
    #[test]
    fn keep_alive_only_after_a_quiet_while() {
        let live = Live::default();
        let mut receiver = live.subscribe();
        assert!(live.keep_alive(), "nothing sent yet");
        assert!(matches!(receiver.try_recv(), Ok(Message::KeepAlive)));
        tick(&live);
        assert!(!live.keep_alive(), "a tick went out since");
        assert!(matches!(receiver.try_recv(), Ok(Message::Event(_))));
        assert!(receiver.try_recv().is_err(), "no keep-alive beside a tick");
        assert!(live.keep_alive(), "quiet since the last call");
        assert!(matches!(receiver.try_recv(), Ok(Message::KeepAlive)));
    }

    /// The first tick goes out whole, the next as a delta naming it; a viewer starting now
    /// gets the newest tick whole under the id its delta went out with.
    #[test]
    fn ticks_after_the_first_are_deltas_and_a_newcomer_gets_the_newest_whole() {
        let live = Live::default();
        let mut receiver = live.subscribe();
        assert_eq!(live.newest_tick(), (None, 0));
        tick(&live);
        let first = event(receiver.try_recv().unwrap());
        let first_seq = (live.epoch << 32) | 1;
        assert!(text(&first.bytes).contains(&format!("event: tick\ndata: {{\"seq\":{first_seq},")));
        tick(&live);
        let second = event(receiver.try_recv().unwrap());
        let second = text(&second.bytes);
        assert!(second.starts_with(&format!("id: {}\nevent: delta\n", live.id(2))));
        let numbers = format!("\"seq\":{},\"base\":{first_seq},", first_seq + 1);
        assert!(second.contains(&numbers), "{second}");
        assert!(second.ends_with("}\n\n"));
        let (whole, latest) = live.newest_tick();
        let whole = whole.unwrap();
        assert_eq!(latest, 2);
        assert!(text(&whole).starts_with(&format!("id: {}\nevent: tick\n", live.id(2))));
        assert!(text(&whole).contains(&format!("{{\"seq\":{},", first_seq + 1)));
    }
}
