//! Who is calling. API clients send `Authorization: Bearer <token>`; browsers hold an HttpOnly
//! session cookie and must echo the session's CSRF token in `X-CSRF-Token` on every request
//! that changes something. No credentials is 401; a known caller without the role is 403.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use cutover_core::role::Role;

use crate::clock::now;
use crate::http::error::ApiError;
use crate::runtime::state::AppState;
use crate::runtime::viewers::SignIn;
use crate::store::User;

/// Name of the session cookie over plain HTTP (a loopback demo).
pub const SESSION_COOKIE: &str = "cutover_session";
/// Name of the session cookie when the server is served over HTTPS (`--public-url
/// https://...`): the `__Host-` prefix makes browsers refuse it unless it is `Secure`, set by
/// this host for `/`, so a sibling subdomain cannot plant or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-cutover_session";

/// The session id a browser sent, under the cookie name this server sets: over HTTPS only
/// the `__Host-` one (accepting the plain one too would undo what the prefix protects).
pub fn session_id(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if state.https() {
        cookie(headers, SECURE_SESSION_COOKIE)
    } else {
        cookie(headers, SESSION_COOKIE)
    }
}
/// Header a cookie session must send with mutating requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller: who, and what they signed in with.
#[derive(Debug, Clone)]
pub struct Caller(pub User, pub Credential);

/// What a caller signed in with, as the limits on live streams count it: a token (one per
/// user), a browser session, or the share link a stakeholder's session was opened with (every
/// visit of a link is a session of its own, so the link is what counts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// The user's name (a user has one token).
    Token(String),
    /// The session id.
    Session(String),
    /// The share link's id.
    Share(String),
}

impl Caller {
    /// 403 unless the caller holds one of `roles`; `action` names what was attempted.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.0.holds(*r)) {
            Ok(())
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "{} has role {}; {action} needs one of: {}",
                self.0.name,
                self.0.role,
                allowed.join(", ")
            )))
        }
    }

    /// 403 if a share-link session tries to read another rollout.
    pub fn may_see(&self, rollout: &str) -> Result<(), ApiError> {
        if self.0.role == Role::Flags {
            return Err(ApiError::Forbidden(format!(
                "{} holds a flags token: it reads flags (/flags, /ofrep) and nothing else",
                self.0.name
            )));
        }
        self.may_read_flags(rollout)
    }

    /// Whether the caller may read `rollout`'s flags: whoever may see it, and services
    /// holding the `flags` role, which may read nothing else.
    pub fn may_read_flags(&self, rollout: &str) -> Result<(), ApiError> {
        match &self.0.only_rollout {
            Some(only) if only != rollout => Err(ApiError::Forbidden(format!(
                "{} may only use rollout \"{only}\"",
                self.0.name
            ))),
            _ => Ok(()),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// What signs a request with these headers in, as an open stream's sign-in is checked again
/// (`runtime::viewers`): the bearer token if one is sent (as [`identify`] reads it), else the
/// session cookie.
pub fn sign_in(state: &AppState, headers: &HeaderMap) -> Option<SignIn> {
    match headers.get(AUTHORIZATION) {
        Some(header) => header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| SignIn::Token(t.trim().to_string())),
        None => session_id(state, headers).map(SignIn::Session),
    }
}

/// Compares two secrets in time that depends only on their length, so a guess's timing does
/// not say how many of its first characters were right.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let sent_something = parts.headers.contains_key(AUTHORIZATION)
            || session_id(state, &parts.headers).is_some();
        match identify(state, &parts.headers, &parts.method, parts.uri.path()).await {
            // A wrong token or an ended session counts as a guess from this address.
            Err(e @ ApiError::Unauthenticated(_)) if sent_something => {
                Err(crate::http::guesses::client_of(parts).failed(e))
            }
            other => other,
        }
    }
}

/// Who sent a request with these headers, method and path (the path as the router sees it,
/// with or without the `/api` prefix).
pub async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> Result<Caller, ApiError> {
    if let Some(header) = headers.get(AUTHORIZATION) {
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the Authorization header must be \"Bearer <token>\"".into(),
                )
            })?;
        let user = state
            .storage
            .user_by_token(token)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("unknown or revoked token".into()))?;
        let credential = Credential::Token(user.name.clone());
        return Ok(Caller(user, credential));
    }
    let Some(id) = session_id(state, headers) else {
        return Err(ApiError::Unauthenticated(
            "sign in: send Authorization: Bearer <token>, or sign in in the browser".into(),
        ));
    };
    let session =
        state.storage.session(&id, now()).await?.ok_or_else(|| {
            ApiError::Unauthenticated("the session has ended: sign in again".into())
        })?;
    if mutating(method) {
        // A share link only ever reads, whatever a plan grants its role; it may sign out.
        if session.share.is_some() && path.trim_start_matches("/api") != "/session" {
            return Err(ApiError::Forbidden(
                "a stakeholder link is read-only".into(),
            ));
        }
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|sent| same_secret(sent, &session.csrf)) {
            return Err(ApiError::Forbidden(
                "missing or wrong X-CSRF-Token for this session".into(),
            ));
        }
    }
    let credential = match session.share {
        Some(share) => Credential::Share(share),
        None => Credential::Session(id),
    };
    Ok(Caller(session.user, credential))
}
