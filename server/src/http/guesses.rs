//! Wrong tokens, ended sessions and unknown share links, counted per client address: past
//! `LIMIT` in a minute, an address's next failures are answered `429` with `Retry-After`
//! instead of `401`/`404`, so guessing is slowed and says so. Credentials that are right are
//! never refused for it: an operator behind the same office address as a guesser still gets
//! the kill in (and 192-bit secrets are not guessed in any case).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::clock::lock;
use crate::http::admission::Edge;
use crate::http::error::ApiError;
use crate::http::peer::{Peer, address_key};

/// Failures an address may make in a window before it is slowed.
pub const LIMIT: u32 = 20;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (old windows are forgotten first).
const ADDRESSES: usize = 65_536;

#[derive(Default)]
pub struct Guesses {
    by: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Guesses {
    /// Counts a failure from `client`; returns `refusal` while under the limit, else a 429
    /// saying when to try again.
    pub fn failed(&self, client: IpAddr, refusal: ApiError) -> ApiError {
        let key = address_key(client);
        let now = Instant::now();
        let mut by = lock(&self.by);
        if by.len() >= ADDRESSES {
            by.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if by.len() >= ADDRESSES {
                by.clear();
            }
        }
        let entry = by.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 <= LIMIT {
            return refusal;
        }
        let wait = WINDOW
            .saturating_sub(now.duration_since(entry.0))
            .as_secs()
            .max(1);
        ApiError::RetryLater(
            format!("too many failed sign-ins from this address: try again in {wait} s"),
            wait,
        )
    }
}

/// The client a request came from (behind a trusted proxy, the one it forwards for), and
/// the edge's guess counter.
pub struct Client {
    pub addr: IpAddr,
    pub edge: Option<Arc<Edge>>,
}

impl Client {
    /// `refusal` counted as a failed guess from this client.
    pub fn failed(&self, refusal: ApiError) -> ApiError {
        match &self.edge {
            Some(edge) => edge.guesses.failed(self.addr, refusal),
            None => refusal,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(client_of(parts))
    }
}

pub fn client_of(parts: &Parts) -> Client {
    let peer = parts
        .extensions
        .get::<Peer>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.ip());
    let edge = parts.extensions.get::<Arc<Edge>>().cloned();
    let addr = match &edge {
        Some(edge) => edge.trusted_proxies.client(peer, &parts.headers),
        None => peer,
    };
    Client { addr, edge }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_slowed_past_its_limit_and_others_are_not() {
        let guesses = Guesses::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..LIMIT {
            let e = guesses.failed(a, ApiError::Unauthenticated("no".into()));
            assert!(matches!(e, ApiError::Unauthenticated(_)));
        }
        let e = guesses.failed(a, ApiError::Unauthenticated("no".into()));
        assert!(matches!(e, ApiError::RetryLater(_, wait) if (1..=60).contains(&wait)));
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(matches!(
            guesses.failed(b, ApiError::NotFound("no".into())),
            ApiError::NotFound(_)
        ));
        // The same /64 is the same address.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..LIMIT {
            guesses.failed(v6a, ApiError::Unauthenticated("no".into()));
        }
        assert!(matches!(
            guesses.failed(v6b, ApiError::Unauthenticated("no".into())),
            ApiError::RetryLater(..)
        ));
    }
}
