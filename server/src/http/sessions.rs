//! Signing in and out in the browser, and read-only share links for stakeholders.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cutover_core::role::Role;
use cutover_core::session::{SessionInfo, ShareLink};
use cutover_core::time::{DAY, HOUR, MINUTE, Span};
use serde::Deserialize;

use crate::clock::now;
use crate::http::auth::{Caller, SECURE_SESSION_COOKIE, SESSION_COOKIE, session_id};
use crate::http::error::ApiError;
use crate::http::guesses::Client;
use crate::http::rollouts::find;
use crate::runtime::state::AppState;
use crate::store::User;

/// How long a signed-in browser stays signed in.
const SESSION_LIFETIME: i64 = 12 * HOUR;
/// Default life of a share link.
const SHARE_LIFETIME: i64 = 7 * DAY;
/// The longest a link may live: a forgotten link must end by itself.
const MAX_SHARE_LIFETIME: i64 = 30 * DAY;

/// Served over HTTPS (`--public-url https://...`): a `Secure` cookie with the `__Host-`
/// prefix. Otherwise `Secure` only when the request reached us over TLS through a proxy that
/// says so, so the cookie still works on a plain-HTTP loopback demo.
pub(crate) fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    value: &str,
    max_age_secs: i64,
) -> String {
    if state.https() {
        return format!(
            "{SECURE_SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}; Secure"
        );
    }
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// `POST /api/session {"token": ...}`: trades an access token for a session cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    let user = state
        .storage
        .user_by_token(body.token.trim())
        .await?
        .ok_or_else(|| {
            client.failed(ApiError::Unauthenticated("unknown or revoked token".into()))
        })?;
    if user.role == Role::Flags {
        return Err(ApiError::Forbidden(
            "this is a flags token: services read flags with it (/flags, /ofrep); it opens no dashboard"
                .into(),
        ));
    }
    let (id, csrf) = state
        .storage
        .create_session(&user, None, now() + SESSION_LIFETIME)
        .await?;
    let body = SessionInfo {
        name: user.name,
        role: user.role,
        csrf,
        rollout: None,
        also: user.also,
    };
    Ok((
        [(
            SET_COOKIE,
            set_cookie(&state, &headers, &id, SESSION_LIFETIME / 1000),
        )],
        Json(body),
    )
        .into_response())
}

/// `GET /api/session`: who this browser is signed in as, and its CSRF token; 204 when it
/// brings no session at all (a first visit is not an error, and a browser logs every 401 as
/// one), 401 when the session it brings has ended.
pub async fn whoami(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Some(id) = session_id(&state, &headers) else {
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    };
    let session =
        state.storage.session(&id, now()).await?.ok_or_else(|| {
            ApiError::Unauthenticated("the session has ended: sign in again".into())
        })?;
    Ok(Json(SessionInfo {
        name: session.user.name,
        role: session.user.role,
        csrf: session.csrf,
        rollout: session.user.only_rollout,
        also: session.user.also,
    })
    .into_response())
}

/// `DELETE /api/session`: signs out.
pub async fn sign_out(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = session_id(&state, &headers) {
        state.storage.end_session(&id).await?;
    }
    Ok((
        [(SET_COOKIE, set_cookie(&state, &headers, "", 0))],
        StatusCode::NO_CONTENT,
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    /// e.g. `72h`; default 7 days.
    expires_in: Option<String>,
}

/// `POST /api/rollouts/{id}/shares`: a read-only link for stakeholders (lead or admin).
pub async fn create_share(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    body: Option<Json<NewShare>>,
) -> Result<(StatusCode, Json<ShareLink>), ApiError> {
    caller.require(&[Role::Lead, Role::Admin], "creating a share link")?;
    caller.may_see(&id)?;
    find(&state, &id)?;
    let life = match body.and_then(|b| b.0.expires_in) {
        Some(text) => {
            Span::parse(&text)
                .map_err(|e| ApiError::BadRequest(format!("expires_in: {e}")))?
                .0
        }
        None => SHARE_LIFETIME,
    };
    if !(MINUTE..=MAX_SHARE_LIFETIME).contains(&life) {
        return Err(ApiError::BadRequest(format!(
            "expires_in: between 1m and {}",
            Span(MAX_SHARE_LIFETIME).human()
        )));
    }
    let at = now();
    let (share, secret) = state
        .storage
        .create_share(&id, &caller.0.name, at, at + life)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ShareLink {
            id: share,
            path: format!("/s/{secret}"),
            expires_at: at + life,
        }),
    ))
}

/// `DELETE /api/shares/{share}`: revokes a link; sessions opened with it end at once.
pub async fn revoke_share(
    State(state): State<AppState>,
    Path(share): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Lead, Role::Admin], "revoking a share link")?;
    if let Some(rollout) = state.storage.share_rollout(&share).await? {
        caller.may_see(&rollout)?;
    }
    if state.storage.revoke_share(&share, now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no active share link \"{share}\""
        )))
    }
}

/// `GET /s/{secret}`: opens a read-only session for the link's rollout and shows it.
pub async fn open_share(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    client: Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let share = state
        .storage
        .share_by_secret(&secret, now())
        .await?
        .ok_or_else(|| {
            client.failed(ApiError::NotFound(
                "this share link is unknown, expired or revoked".into(),
            ))
        })?;
    let user = User {
        name: format!("stakeholder (link {})", share.id),
        role: Role::Viewer,
        only_rollout: Some(share.rollout.clone()),
        also: Vec::new(),
        person: None,
        email: None,
    };
    let life = (share.expires_at - now()).min(SESSION_LIFETIME);
    let (id, _) = state
        .storage
        .create_session(&user, Some(&share.id), now() + life)
        .await?;
    let cookie = set_cookie(&state, &headers, &id, life / 1000);
    Ok((
        [(SET_COOKIE, cookie)],
        Redirect::to(&format!("/r/{}", share.rollout)),
    )
        .into_response())
}
