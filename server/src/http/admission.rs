//! Who may open a live stream, so that viewers can never crowd out a kill.
//!
//! Streams are the only requests that hold a connection for long: everything else finishes
//! within the request timeout, and an idle connection is closed after the header timeout. So
//! streams get at most the connection capacity less a reserve, and every other request (an
//! operator's kill, the CLI, ingest) always finds a connection slot in that reserve. Within
//! the streams' share, one sign-in (a token, a session) and one client address (IPv6 by its
//! /64, behind a trusted proxy the client it forwards for) each get a bounded part, and a
//! share link, which any number of stakeholders may hold, a larger one: one leaked link or
//! one busy office cannot take every stream.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::clock::lock;
use crate::http::auth::Credential;
use crate::http::peer::{TrustedProxies, address_key};

/// How the server meets the network: set by whoever starts it (`cutover serve` flags, tests).
#[derive(Debug, Clone)]
pub struct Options {
    /// Proxies whose `Forwarded` / `X-Forwarded-For` are believed.
    pub trusted_proxies: TrustedProxies,
    /// Streams one token or session may hold.
    pub streams_per_sign_in: usize,
    /// How long a stream lasts before the server ends it and the app reconnects (with its
    /// last event id, so nothing is missed): every stream is admitted and checked anew.
    pub stream_lifetime: std::time::Duration,
    /// Connections at most; `None` sizes it to the file-descriptor limit.
    pub max_connections: Option<usize>,
    /// How long an OTLP batch waits for one of the decoding slots before a 429.
    pub otlp_queue: std::time::Duration,
}

/// Streams last 30 minutes (give or take a tenth, so streams opened together do not all
/// come back together).
pub const STREAM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

impl Default for Options {
    fn default() -> Options {
        Options {
            trusted_proxies: TrustedProxies::default(),
            streams_per_sign_in: PER_SIGN_IN,
            stream_lifetime: STREAM_LIFETIME,
            max_connections: None,
            otlp_queue: crate::http::otlp::QUEUE,
        }
    }
}

/// What the handlers need of the edge: the stream admission, who is a trusted proxy, how
/// long a stream lasts.
pub struct Edge {
    pub admission: Arc<Admission>,
    pub trusted_proxies: TrustedProxies,
    pub stream_lifetime: std::time::Duration,
    /// Failed sign-ins per client address.
    pub guesses: crate::http::guesses::Guesses,
    /// The slots OTLP batches are decoded in.
    pub otlp: crate::http::otlp::OtlpLimit,
}

impl Edge {
    pub fn new(options: &Options, capacity: usize) -> Edge {
        Edge {
            admission: Admission::new(Limits::for_capacity(capacity, options.streams_per_sign_in)),
            trusted_proxies: options.trusted_proxies.clone(),
            stream_lifetime: options.stream_lifetime,
            guesses: Default::default(),
            otlp: crate::http::otlp::OtlpLimit::new(options.otlp_queue),
        }
    }

    /// A stream's lifetime, spread by up to a tenth either way.
    pub fn lifetime(&self) -> std::time::Duration {
        use rand::Rng;
        let base = self.stream_lifetime.as_millis() as u64;
        let spread = base / 10;
        let ms = base - spread + rand::rng().random_range(0..=2 * spread);
        std::time::Duration::from_millis(ms)
    }
}

/// How many streams there may be, in all and per holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams in all: the connection capacity less the reserve for other requests.
    pub streams: usize,
    /// Per token or browser session (a person's tabs and screens).
    pub per_sign_in: usize,
    /// Per share link (every stakeholder who opened it).
    pub per_share: usize,
    /// Per client address.
    pub per_address: usize,
}

/// Streams a token or a session may hold open by default: a person's tabs, a wall or two.
pub const PER_SIGN_IN: usize = 16;

impl Limits {
    /// The limits for `capacity` connections: an eighth (at least 64, at most half) kept for
    /// requests that are not streams; a share link may hold half the streams, an address an
    /// eighth of them.
    pub fn for_capacity(capacity: usize, per_sign_in: usize) -> Limits {
        let reserve = (capacity / 8).max(64).min(capacity / 2);
        let streams = capacity - reserve;
        Limits {
            streams,
            per_sign_in: per_sign_in.clamp(1, streams.max(1)),
            per_share: (streams / 2).max(1),
            per_address: (streams / 8).max(per_sign_in.min(streams)).max(1),
        }
    }

    /// The connections kept for requests that are not streams.
    pub fn reserve(&self, capacity: usize) -> usize {
        capacity.saturating_sub(self.streams)
    }
}

/// What a stream is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    SignIn(Credential),
    Address(IpAddr),
}

#[derive(Default)]
struct Counts {
    total: usize,
    by: HashMap<Holder, usize>,
}

/// The open streams, counted per holder.
pub struct Admission {
    limits: Mutex<Limits>,
    counts: Mutex<Counts>,
}

/// Why a stream was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "the server holds its most live streams ({0}); the rest of its capacity is kept for actions: try again shortly"
    )]
    Full(usize),
    #[error("this sign-in already has {0} live streams open: close a tab or a screen")]
    SignIn(usize),
    #[error("this share link already has {0} live streams open")]
    Share(usize),
    #[error("this address already has {0} live streams open")]
    Address(usize),
}

/// An admitted stream's place; given back when the stream ends (dropped with its body).
pub struct Pass {
    admission: Arc<Admission>,
    holders: [Holder; 2],
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut counts = lock(&self.admission.counts);
        counts.total = counts.total.saturating_sub(1);
        for holder in &self.holders {
            if let Some(n) = counts.by.get_mut(holder) {
                *n -= 1;
                if *n == 0 {
                    counts.by.remove(holder);
                }
            }
        }
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits: Mutex::new(limits),
            counts: Mutex::default(),
        })
    }

    /// Resizes the limits (the accept loop knows the capacity only once it has raised the
    /// file limit); streams already open stay.
    pub fn set_limits(&self, limits: Limits) {
        *lock(&self.limits) = limits;
    }

    pub fn limits(&self) -> Limits {
        *lock(&self.limits)
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }

    /// Admits a stream for `credential` from `client`, or says which limit it meets.
    pub fn admit(
        self: &Arc<Self>,
        credential: &Credential,
        client: IpAddr,
    ) -> Result<Pass, Refused> {
        let limits = self.limits();
        let (sign_in_limit, over) = match credential {
            Credential::Share(_) => (limits.per_share, Refused::Share as fn(usize) -> Refused),
            _ => (limits.per_sign_in, Refused::SignIn as fn(usize) -> Refused),
        };
        let holders = [
            Holder::SignIn(credential.clone()),
            Holder::Address(address_key(client)),
        ];
        let mut counts = lock(&self.counts);
        if counts.total >= limits.streams {
            return Err(Refused::Full(limits.streams));
        }
        let held = |h: &Holder| counts.by.get(h).copied().unwrap_or(0);
        if held(&holders[0]) >= sign_in_limit {
            return Err(over(sign_in_limit));
        }
        if held(&holders[1]) >= limits.per_address {
            return Err(Refused::Address(limits.per_address));
        }
        counts.total += 1;
        for holder in &holders {
            *counts.by.entry(holder.clone()).or_default() += 1;
        }
        drop(counts);
        Ok(Pass {
            admission: self.clone(),
            holders,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn limits_keep_a_reserve_whatever_the_capacity() {
        for capacity in [16, 100, 1_024, 16_384] {
            let l = Limits::for_capacity(capacity, PER_SIGN_IN);
            assert!(
                l.reserve(capacity) >= (capacity / 8).min(capacity / 2),
                "{capacity}"
            );
            assert!(l.reserve(capacity) >= 8, "{capacity}");
            assert!(l.per_share < l.streams, "{l:?}");
            if capacity >= 1_024 {
                assert!(l.per_address < l.streams, "{l:?}");
            }
            assert!(l.per_sign_in >= 1);
        }
        assert_eq!(Limits::for_capacity(16_384, 16).streams, 14_336);
    }

    #[test]
    fn each_holder_meets_its_own_limit_and_ends_give_places_back() {
        let admission = Admission::new(Limits {
            streams: 10,
            per_sign_in: 2,
            per_share: 4,
            per_address: 5,
        });
        let token = Credential::Token("ops".into());
        let a = admission.admit(&token, ip("192.0.2.1")).unwrap();
        let _b = admission.admit(&token, ip("192.0.2.2")).unwrap();
        assert_eq!(
            admission.admit(&token, ip("192.0.2.3")).err(),
            Some(Refused::SignIn(2))
        );
        drop(a);
        let _c = admission.admit(&token, ip("192.0.2.3")).unwrap();
        // A share link: its own larger limit, then the address's.
        let link = Credential::Share("s1".into());
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(admission.admit(&link, ip("2001:db8:0:1::1")).unwrap());
        }
        assert_eq!(
            admission.admit(&link, ip("2001:db8:0:2::1")).err(),
            Some(Refused::Share(4))
        );
        // Another address in the same /64 is the same address.
        let other = Credential::Session("s".into());
        held.push(admission.admit(&other, ip("2001:db8:0:1::ffff")).unwrap());
        assert_eq!(
            admission.admit(&other, ip("2001:db8:0:1::2")).err(),
            Some(Refused::Address(5))
        );
        // The whole: 2 + 5 open, then 3 more from elsewhere fill it.
        for i in 0..3 {
            let c = Credential::Session(format!("x{i}"));
            held.push(admission.admit(&c, ip(&format!("198.51.100.{i}"))).unwrap());
        }
        assert_eq!(admission.open(), 10);
        let late = Credential::Session("late".into());
        assert_eq!(
            admission.admit(&late, ip("198.51.100.99")).err(),
            Some(Refused::Full(10))
        );
        held.clear();
        assert_eq!(admission.open(), 2);
    }
}
