//! Signing in through the company's identity provider (`crate::sso` speaks OpenID Connect):
//!
//! - `GET /api/sso`: whether sign-in through a provider is offered, and its name (public:
//!   the sign-in page asks it);
//! - `GET /auth/sso/start?return_to=/r/...`: off to the provider, with the sign-in kept
//!   server-side under its `state` and the browser bound to it by a cookie;
//! - `GET /auth/sso/callback`: back from it; the state must be this browser's and unused,
//!   the person must be vouched for and mapped to a role, then a session opens.
//!
//! Every refusal is a page that says why, and whom to ask when it is about access.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::clock::now;
use crate::http::auth::cookie;
use crate::http::error::ApiError;
use crate::http::sessions::set_cookie;
use crate::runtime::state::AppState;
use crate::sso::{MAX_PENDING, PENDING_FOR, SsoError};
use crate::store::{Pending, User};

/// Binds a sign-in to the browser that started it (login CSRF).
const STATE_COOKIE: &str = "cutover_sso";
/// Where the provider sends people back.
const CALLBACK: &str = "/auth/sso/callback";

/// `GET /api/sso`
pub async fn offered(State(state): State<AppState>) -> Result<Response, ApiError> {
    let sso = state
        .sso
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("no single sign-on is configured".into()))?;
    Ok(axum::Json(serde_json::json!({
        "name": sso.settings.name,
        "start": "/auth/sso/start",
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

/// Only a path on this site: anything else (another host, a scheme, `//host`, a backslash
/// some browsers read as a slash) returns to the overview.
fn local_path(return_to: Option<&str>) -> String {
    match return_to {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= 512 =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The callback URL the provider knows: configured, or this server's public URL, or the host
/// the browser asked (the provider checks it against what was registered).
fn redirect_url(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let sso = state.sso.as_ref().expect("checked by the caller");
    if let Some(url) = &sso.settings.redirect_url {
        return Ok(url.clone());
    }
    if let Some(base) = state.public_url.as_deref() {
        return Ok(format!("{base}{CALLBACK}"));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .ok_or_else(|| ApiError::BadRequest("no Host to return to".into()))?;
    Ok(format!("http://{host}{CALLBACK}"))
}

/// `GET /auth/sso/start`
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let Some(sso) = state.sso.clone() else {
        return Ok(not_offered());
    };
    let redirect = redirect_url(&state, &headers)?;
    let begin = match sso.begin(&redirect).await {
        Ok(b) => b,
        Err(e) => return Ok(refused(&e)),
    };
    let kept = state
        .storage
        .sso_begin(
            &begin.state,
            &Pending {
                nonce: begin.nonce,
                verifier: begin.verifier,
                return_to: local_path(q.return_to.as_deref()),
            },
            now(),
            PENDING_FOR,
            MAX_PENDING,
        )
        .await?;
    if !kept {
        return Err(ApiError::RetryLater(
            "too many sign-ins are under way; try again in a minute".into(),
            60,
        ));
    }
    let secure = if state.https() { "; Secure" } else { "" };
    let bind = format!(
        "{STATE_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/auth/sso; Max-Age={}{secure}",
        begin.state,
        PENDING_FOR / 1000
    );
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, begin.url), (header::SET_COOKIE, bind)],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/sso/callback`
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Result<Response, ApiError> {
    let Some(sso) = state.sso.clone() else {
        return Ok(not_offered());
    };
    if let Some(error) = &q.error {
        let detail = q.error_description.as_deref().unwrap_or("");
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "Sign-in did not finish",
            &format!("The sign-in provider answered {error}: {detail}"),
        ));
    }
    let (Some(code), Some(returned)) = (&q.code, &q.state) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "Sign-in did not finish",
            "The provider sent no code or state back.",
        ));
    };
    // The state must be the one this browser left with, and never used before.
    let ours = cookie(&headers, STATE_COOKIE);
    if ours.as_deref().map(str::as_bytes) != Some(returned.as_bytes()) {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "This sign-in did not start in this browser (its state does not match). Start again from the sign-in page.",
        ));
    }
    let Some(pending) = state.storage.sso_take(returned, now(), PENDING_FOR).await? else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "This sign-in was already used or took longer than ten minutes. Start again from the sign-in page.",
        ));
    };
    let redirect = redirect_url(&state, &headers)?;
    let person = match sso
        .finish(
            &redirect,
            code,
            &pending.nonce,
            &pending.verifier,
            q.iss.as_deref(),
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return Ok(refused(&e)),
    };
    let admitted = state
        .storage
        .sso_signed_in(
            &person.subject,
            &person.name,
            person.email.as_deref(),
            &person.groups,
            &person.roles,
            now(),
        )
        .await?;
    if !admitted {
        return Ok(refused(&SsoError::NotAllowed(format!(
            "{}'s access to cutover was revoked here. Ask {} to restore it.",
            person.name,
            sso.settings
                .contact
                .as_deref()
                .unwrap_or("whoever runs cutover")
        ))));
    }
    let user = User {
        name: person.name.clone(),
        role: person.roles[0],
        only_rollout: None,
        also: person.roles[1..].to_vec(),
        person: Some(format!("sso:{}", person.subject)),
        email: person.email.clone(),
    };
    let life = sso.settings.session_lifetime;
    let (id, _) = state
        .storage
        .create_session(&user, None, now() + life)
        .await?;
    let clear = format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/auth/sso; Max-Age=0");
    let roles: Vec<&str> = person.roles.iter().map(|r| r.as_str()).collect();
    // A page of this site moves on, not a redirect: the session cookie is SameSite=Strict,
    // and a navigation this page starts is same-site, so the next page load carries it.
    let to = html_escape(&pending.return_to);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cutover: signed in</title>\
         <meta http-equiv=\"refresh\" content=\"0;url={to}\"></head><body><main>\
         <h1>Signed in as {}</h1><p>Roles: {}.</p><p><a href=\"{to}\">Continue</a></p></main></body></html>",
        html_escape(&person.name),
        html_escape(&roles.join(", ")),
    );
    let mut response = (StatusCode::OK, Html(body)).into_response();
    let headers = response.headers_mut();
    for c in [
        set_cookie(&state, &HeaderMap::new(), &id, life / 1000),
        clear,
    ] {
        if let Ok(v) = c.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

fn not_offered() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "No single sign-on",
        "This cutover signs people in with access tokens only.",
    )
}

fn refused(e: &SsoError) -> Response {
    match e {
        SsoError::Provider(_) => page(
            StatusCode::BAD_GATEWAY,
            "The sign-in provider did not answer",
            &e.to_string(),
        ),
        SsoError::Rejected(_) => page(StatusCode::BAD_REQUEST, "Sign-in refused", &e.to_string()),
        SsoError::NotAllowed(_) => page(
            StatusCode::FORBIDDEN,
            "No access to cutover",
            &e.to_string(),
        ),
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cutover: {0}</title></head>\
         <body><main><h1>{0}</h1><p>{1}</p><p><a href=\"/\">Back to cutover</a></p></main></body></html>",
        html_escape(title),
        html_escape(text)
    );
    (status, Html(body)).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_site() {
        assert_eq!(local_path(Some("/r/spiralogic")), "/r/spiralogic");
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "evil",
            "/r/x\n",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
