//! A channel's outbox: the messages waiting for one receiver, which to try next, and which to
//! let go when it is full. Pure, so every interleaving of pushes, failures and deliveries can
//! be tested without a network.
//!
//! - Each message has an id; a delivery removes that message, whatever was pushed or evicted
//!   while it was in flight.
//! - The most important message goes first (a kill before a gate's flapping), and a message
//!   that has failed `BUDGET` times in a row yields to the others: one message a receiver
//!   chokes on cannot hold a kill behind it. It is tried again after them.
//! - Full, the outbox lets go of its least important message, oldest first, and never of a kill
//!   or an actuator's failure while it has anything else; the count of what it let go is kept.
//! - A key per episode is queued once; the keys are kept with the messages, so a restart (the
//!   outbox is stored) neither loses a message nor sends an escalation twice.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::Event;
use crate::plan::{EventKind, Severity};

/// Messages held before the least important is let go.
pub const CAP: usize = 256;
/// Past `CAP`, messages that are never let go for others (kills, actuator failures) may still
/// be held, up to this.
pub const HARD_CAP: usize = 1_024;
/// Episode keys remembered.
pub const KEYS: usize = 1_024;
/// Failed attempts in a row after which a message yields to the others.
pub const BUDGET: u32 = 5;

/// A message waiting for its channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub id: u64,
    pub event: Event,
    /// The rollout page, when the server knows its public address.
    pub page: Option<String>,
    /// The channel this one escalates, when it does.
    pub escalated_from: Option<String>,
    /// Failed attempts so far.
    pub attempts: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    next_id: u64,
    messages: Vec<Queued>,
    keys: VecDeque<String>,
    /// Messages let go (full, or refused by the receiver).
    pub dropped: u64,
    /// The message being delivered: never the one let go.
    #[serde(skip)]
    in_flight: Option<u64>,
}

/// How much a message matters when only some can be kept or one must go first.
pub fn importance(event: &Event) -> u8 {
    match event.kind {
        EventKind::Kill | EventKind::ActuatorFailing | EventKind::Unconfirmed => 4,
        EventKind::Confirmed => 3,
        EventKind::StepBack | EventKind::Timebox => 3,
        EventKind::AlertFired if event.severity == Severity::Critical => 3,
        EventKind::AlertFired
        | EventKind::StageEntered
        | EventKind::Completed
        | EventKind::Acknowledged
        | EventKind::Decision
        | EventKind::Worse => 2,
        EventKind::GateFailing
        | EventKind::Stale
        | EventKind::AlertResolved
        | EventKind::Overdue => 1,
        // A newer one follows: the first to go when a receiver is behind.
        EventKind::Status => 0,
    }
}

/// Never let go to make room for another kind.
fn kept(event: &Event) -> bool {
    matches!(
        event.kind,
        EventKind::Kill | EventKind::ActuatorFailing | EventKind::Unconfirmed
    )
}

impl Queued {
    /// The key a message is queued once under.
    pub fn key(&self) -> String {
        match &self.escalated_from {
            Some(from) => format!("escalated-from-{from}:{}", self.event.key),
            None => self.event.key.clone(),
        }
    }
}

impl Outbox {
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn messages(&self) -> &[Queued] {
        &self.messages
    }

    /// Queues a message unless its key was queued before; returns its id. Full, the least
    /// important message (oldest first; never the one in flight) goes to make room, or, if
    /// the new one matters least, the new one.
    pub fn push(
        &mut self,
        event: Event,
        page: Option<String>,
        escalated_from: Option<String>,
    ) -> Option<u64> {
        let message = Queued {
            id: self.next_id,
            event,
            page,
            escalated_from,
            attempts: 0,
        };
        let key = message.key();
        if self.keys.contains(&key) {
            return None;
        }
        if self.keys.len() >= KEYS {
            self.keys.pop_front();
        }
        self.keys.push_back(key);
        self.next_id += 1;
        if self.messages.len() >= CAP && !self.make_room(&message) {
            self.dropped += 1;
            return None;
        }
        let id = message.id;
        self.messages.push(message);
        Some(id)
    }

    /// Lets the least important message go for `incoming`; false if `incoming` should go.
    fn make_room(&mut self, incoming: &Queued) -> bool {
        let candidate = self
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| Some(m.id) != self.in_flight)
            .filter(|(_, m)| !kept(&m.event) || self.messages.len() >= HARD_CAP)
            .min_by_key(|(_, m)| (importance(&m.event), m.id))
            .map(|(i, m)| (i, importance(&m.event)));
        match candidate {
            // The incoming message matters less than anything held: it goes.
            Some((_, least)) if least > importance(&incoming.event) && !kept(&incoming.event) => {
                false
            }
            Some((i, _)) => {
                self.messages.remove(i);
                self.dropped += 1;
                true
            }
            // Only kept messages held: room for another kept one, up to the hard bound.
            None => kept(&incoming.event) && self.messages.len() < HARD_CAP,
        }
    }

    /// The message to try now: the most important, oldest first, of those that have spent
    /// the fewest budgets of failures. Marked in flight.
    pub fn begin(&mut self) -> Option<Queued> {
        let next = self
            .messages
            .iter()
            .min_by_key(|m| {
                (
                    m.attempts / BUDGET,
                    std::cmp::Reverse(importance(&m.event)),
                    m.id,
                )
            })?
            .clone();
        self.in_flight = Some(next.id);
        Some(next)
    }

    /// Message `id` was taken: gone (if it is still here).
    pub fn delivered(&mut self, id: u64) {
        self.settle(id);
        self.messages.retain(|m| m.id != id);
    }

    /// The receiver refused message `id` for good: gone, counted.
    pub fn refused(&mut self, id: u64) {
        self.settle(id);
        let before = self.messages.len();
        self.messages.retain(|m| m.id != id);
        if self.messages.len() < before {
            self.dropped += 1;
        }
    }

    /// Message `id` failed once more.
    pub fn failed(&mut self, id: u64) {
        self.settle(id);
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
            m.attempts = m.attempts.saturating_add(1);
        }
    }

    fn settle(&mut self, id: u64) {
        if self.in_flight == Some(id) {
            self.in_flight = None;
        }
    }

    /// Takes in another outbox's messages (a stopped replica's, or this channel's before a
    /// restart): those whose keys this one has not queued, as new messages of its own.
    pub fn adopt(&mut self, other: Outbox) {
        for m in other.messages {
            self.push(m.event, m.page, m.escalated_from);
        }
        for key in other.keys {
            if !self.keys.contains(&key) {
                if self.keys.len() >= KEYS {
                    self.keys.pop_front();
                }
                self.keys.push_back(key);
            }
        }
        self.dropped += other.dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(kind: EventKind, key: &str) -> Event {
        Event {
            kind,
            severity: Severity::Warning,
            rollout: "r".into(),
            title: key.into(),
            lines: vec![],
            key: key.into(),
            at: 0,
        }
    }

    /// The old bug: a full queue let go of the message in flight, and its delivery then took
    /// another one off the front. A kill pushed while a gate message is in flight, with the
    /// queue full of gate messages, is delivered; the one in flight is removed, not a kill.
    #[test]
    fn a_full_outbox_never_loses_a_kill_or_the_message_in_flight() {
        let mut outbox = Outbox::default();
        for i in 0..CAP {
            outbox.push(event(EventKind::GateFailing, &format!("g{i}")), None, None);
        }
        let first = outbox.begin().unwrap();
        let kill = outbox
            .push(event(EventKind::Kill, "kill"), None, None)
            .unwrap();
        assert_eq!(outbox.len(), CAP);
        assert!(outbox.messages().iter().any(|m| m.id == first.id));
        outbox.delivered(first.id);
        assert!(outbox.messages().iter().any(|m| m.id == kill));
        // The kill goes next, before every older gate message.
        assert_eq!(outbox.begin().unwrap().id, kill);
        assert_eq!(outbox.dropped, 1);
    }

    /// A message the receiver keeps failing on yields after its budget, so the kill queued
    /// behind it goes; the poisoned one is tried again after.
    #[test]
    fn a_poisoned_message_cannot_hold_a_kill_behind_it() {
        let mut outbox = Outbox::default();
        let poison = outbox
            .push(event(EventKind::Kill, "k1"), None, None)
            .unwrap();
        let kill = outbox
            .push(event(EventKind::Kill, "k2"), None, None)
            .unwrap();
        for _ in 0..BUDGET {
            let m = outbox.begin().unwrap();
            assert_eq!(m.id, poison);
            outbox.failed(m.id);
        }
        assert_eq!(outbox.begin().unwrap().id, kill);
        outbox.delivered(kill);
        assert_eq!(outbox.begin().unwrap().id, poison);
    }

    #[test]
    fn keys_survive_a_round_trip_through_storage_and_adoption() {
        let mut outbox = Outbox::default();
        outbox.push(
            event(EventKind::AlertFired, "a1"),
            None,
            Some("first".into()),
        );
        let stored = serde_json::to_string(&outbox).unwrap();
        let mut restarted: Outbox = serde_json::from_str(&stored).unwrap();
        assert_eq!(restarted.len(), 1);
        // The same escalation told again after the restart is not queued twice.
        assert!(
            restarted
                .push(
                    event(EventKind::AlertFired, "a1"),
                    None,
                    Some("first".into())
                )
                .is_none()
        );
        let mut other = Outbox::default();
        other.adopt(restarted);
        assert_eq!(other.len(), 1);
        assert!(
            other
                .push(
                    event(EventKind::AlertFired, "a1"),
                    None,
                    Some("first".into())
                )
                .is_none()
        );
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        proptest::sample::select(EventKind::ALL.to_vec())
    }

    #[derive(Debug, Clone)]
    enum Step {
        Push(EventKind),
        Begin,
        Deliver,
        Fail,
        Refuse,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => kind().prop_map(Step::Push),
            2 => Just(Step::Begin),
            1 => Just(Step::Deliver),
            2 => Just(Step::Fail),
            1 => Just(Step::Refuse),
        ]
    }

    proptest! {
        /// Whatever the interleaving of pushes, attempts and outcomes: the outbox stays within
        /// its bound, every kill pushed is delivered or still held (never let go while
        /// anything else is held), and every push is accounted for (held, delivered, let go
        /// or a duplicate key).
        #[test]
        fn nothing_is_lost_uncounted_and_no_kill_is_let_go(steps in proptest::collection::vec(step(), 0..1_500)) {
            let mut outbox = Outbox::default();
            let (mut pushed, mut delivered) = (0u64, 0u64);
            let mut kills = Vec::new();
            let mut kills_delivered = Vec::new();
            let mut current: Option<Queued> = None;
            for (i, s) in steps.into_iter().enumerate() {
                match s {
                    Step::Push(kind) => {
                        pushed += 1;
                        if let Some(id) = outbox.push(event(kind, &format!("e{i}")), None, None)
                            && kind == EventKind::Kill
                        {
                            kills.push(id);
                        }
                    }
                    Step::Begin => current = outbox.begin(),
                    Step::Deliver => if let Some(m) = current.take() {
                        if outbox.messages().iter().any(|x| x.id == m.id) {
                            delivered += 1;
                            if m.event.kind == EventKind::Kill {
                                kills_delivered.push(m.id);
                            }
                        }
                        outbox.delivered(m.id);
                    },
                    Step::Fail => if let Some(m) = current.take() { outbox.failed(m.id) },
                    Step::Refuse => if let Some(m) = current.take() {
                        if m.event.kind == EventKind::Kill {
                            kills_delivered.push(m.id);
                        }
                        outbox.refused(m.id);
                    },
                }
                prop_assert!(outbox.len() <= HARD_CAP);
            }
            prop_assert_eq!(pushed, outbox.len() as u64 + delivered + outbox.dropped);
            for id in kills {
                prop_assert!(
                    kills_delivered.contains(&id) || outbox.messages().iter().any(|m| m.id == id),
                    "kill {} lost", id
                );
            }
        }
    }
}
