//! The sign-ins behind open streams, checked again every few seconds so that a revoked user, an
//! ended session or a revoked share link stops seeing a rollout within seconds. Checked once
//! per sign-in, not once per stream (a token's or a browser's many streams cost one query; each
//! visit of a share link is a session of its own), a few at a time, each within a time limit;
//! a stream holds no timer or query of its own.
//!
//! The sign-ins found ended in a round are told once, in one message per rollout on its live
//! channel (`live::Message::Ended`), which each stream already listens to: however many end at
//! once, the channel takes one message, so no other viewer falls behind for it. A stream ends
//! on its own sign-in's id and ignores others; one that fell behind reads its sign-in's mark.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_core::time::Millis;

use crate::clock::{lock, now};
use crate::runtime::state::AppState;
use crate::store::Storage;

/// How often the sign-ins of open streams are checked again.
pub const RECHECK: Duration = Duration::from_secs(5);
/// Sign-ins checked at once.
const AT_ONCE: usize = 8;
/// How long one check may take; past it the sign-in counts as still valid until the next round,
/// as a storage error does.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What signed a stream's request in, as it is checked again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SignIn {
    /// A bearer token (a person's, or an automation's).
    Token(String),
    /// A browser session's id (a person's or a share link's).
    Session(String),
}

impl SignIn {
    /// Whether it still signs someone in at `at`. A storage error counts as yes: a database blip
    /// must not throw every viewer out.
    pub async fn still_valid(&self, storage: &Storage, at: Millis) -> bool {
        match self {
            SignIn::Token(token) => storage.user_by_token(token).await.map(|u| u.is_some()).ok(),
            SignIn::Session(id) => storage.session(id, at).await.map(|s| s.is_some()).ok(),
        }
        .unwrap_or(true)
    }
}

/// The sign-ins of the streams open now, each with how many streams it holds.
#[derive(Default)]
pub struct Viewers {
    open: Mutex<HashMap<Arc<SignIn>, Entry>>,
    next_id: AtomicU64,
}

struct Entry {
    id: u64,
    streams: usize,
    /// Found to sign no one in: its streams were told to end.
    ended: bool,
}

/// One stream's hold on its sign-in: counted while the stream is open, given back on drop.
pub struct Watching {
    viewers: Arc<Viewers>,
    sign_in: Arc<SignIn>,
    id: u64,
}

impl Viewers {
    /// Counts a stream under `sign_in`; the id it gets is what an `Ended` message names.
    pub fn watch(self: &Arc<Self>, sign_in: SignIn) -> Watching {
        use std::collections::hash_map::Entry::{Occupied, Vacant};
        let (sign_in, id) = match lock(&self.open).entry(Arc::new(sign_in)) {
            Occupied(mut held) => {
                // A stream opening now was signed in just now: valid again (its older streams
                // were told to end).
                held.get_mut().ended = false;
                held.get_mut().streams += 1;
                (held.key().clone(), held.get().id)
            }
            Vacant(new) => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let sign_in = new.key().clone();
                new.insert(Entry {
                    id,
                    streams: 1,
                    ended: false,
                });
                (sign_in, id)
            }
        };
        Watching {
            viewers: self.clone(),
            sign_in,
            id,
        }
    }

    /// Every sign-in some stream holds now and not yet found ended, with its id.
    pub fn open(&self) -> Vec<(u64, Arc<SignIn>)> {
        lock(&self.open)
            .iter()
            .filter(|(_, entry)| !entry.ended)
            .map(|(sign_in, entry)| (entry.id, sign_in.clone()))
            .collect()
    }

    /// Marks `sign_in` as signing no one in, until a stream under it opens again; false if its
    /// entry is no longer the one with `id` (its streams all went, and new ones came).
    pub fn mark_ended(&self, sign_in: &SignIn, id: u64) -> bool {
        match lock(&self.open).get_mut(sign_in) {
            Some(entry) if entry.id == id => {
                entry.ended = true;
                true
            }
            _ => false,
        }
    }

    /// How many streams are open (under any sign-in).
    #[cfg(test)]
    fn streams(&self) -> usize {
        lock(&self.open).values().map(|e| e.streams).sum()
    }
}

impl Watching {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether its sign-in was found to sign no one in: for a stream that fell behind and
    /// may have missed being told.
    pub fn ended(&self) -> bool {
        lock(&self.viewers.open)
            .get(&self.sign_in)
            .is_some_and(|entry| entry.ended)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut open = lock(&self.viewers.open);
        if let Some(entry) = open.get_mut(&self.sign_in) {
            entry.streams -= 1;
            if entry.streams == 0 {
                open.remove(&self.sign_in);
            }
        }
    }
}

/// Every few seconds, checks each open stream's sign-in once and ends the streams of those that
/// no longer sign anyone in, and sends a keep-alive to the streams of a rollout that was quiet
/// meanwhile (the evaluator's ticks are each second, but it may be stopped or stalled).
pub async fn run(state: AppState) {
    let mut every = tokio::time::interval(RECHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.reset();
    loop {
        every.tick().await;
        // First, so a slow database never keeps a quiet stream from its comment.
        for rollout in state.rollouts.values() {
            rollout.live.keep_alive();
        }
        check(&state).await;
    }
}

/// One check of every open stream's sign-in not yet found ended, at the present time; tells
/// the ones that ended and returns how many.
pub async fn check(state: &AppState) -> usize {
    use futures::StreamExt;
    let ended: Vec<u64> = futures::stream::iter(state.viewers.open())
        .map(|(id, sign_in)| async move {
            let asked = sign_in.still_valid(&state.storage, now());
            let valid = tokio::time::timeout(CHECK_TIMEOUT, asked).await;
            (valid == Ok(false)).then_some((id, sign_in))
        })
        .buffer_unordered(AT_ONCE)
        .filter_map(std::future::ready)
        .filter(|(id, sign_in)| std::future::ready(state.viewers.mark_ended(sign_in, *id)))
        .map(|(id, _)| id)
        .collect()
        .await;
    let count = ended.len();
    if count > 0 {
        let ended: Arc<[u64]> = ended.into();
        for rollout in state.rollouts.values() {
            rollout.live.send_ended(ended.clone());
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_on_one_sign_in_share_one_entry_until_the_last_goes() {
        let viewers = Arc::new(Viewers::default());
        let link = || SignIn::Session("share".into());
        let phones: Vec<_> = (0..1000).map(|_| viewers.watch(link())).collect();
        let operator = viewers.watch(SignIn::Token("operator".into()));
        assert_eq!(
            viewers.open().len(),
            2,
            "one check per sign-in, not per stream"
        );
        assert_eq!(viewers.streams(), 1001);
        assert!(phones.iter().all(|p| p.id() == phones[0].id()));
        assert_ne!(operator.id(), phones[0].id());
        drop(phones);
        assert_eq!(viewers.open().len(), 1);
        let again = viewers.watch(link());
        assert_ne!(again.id(), operator.id());
        assert!(!viewers.mark_ended(&SignIn::Token("operator".into()), operator.id() + 99));
        assert!(!operator.ended(), "another entry's id marks nothing");
        assert!(viewers.mark_ended(&SignIn::Token("operator".into()), operator.id()));
        assert!(operator.ended() && !again.ended());
        assert_eq!(
            viewers.open().len(),
            1,
            "an ended sign-in is not asked again"
        );
        let operator_again = viewers.watch(SignIn::Token("operator".into()));
        assert!(!operator.ended(), "signed in again by a stream opening now");
        drop((operator, again, operator_again));
        assert!(viewers.open().is_empty(), "nothing kept for streams gone");
    }
}
