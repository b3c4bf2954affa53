//! Typed calls to the server's JSON API. The browser's session cookie authenticates; mutating
//! calls also send the session's CSRF token.

use gloo_net::http::{Request, Response};
use wasm_bindgen::JsCast;

pub use cutover_core::snapshot::Summary;

use cutover_core::audit::{AuditEntry, AuditPage};
use cutover_core::route::ActionRoute;
/// Who this browser is signed in as.
pub use cutover_core::session::SessionInfo as Me;
/// A read-only link to one rollout, as the server made it.
pub use cutover_core::session::ShareLink as Share;

/// The server's error message, or a description of the failure.
async fn error_text(response: Response) -> String {
    let status = response.status();
    match response.json::<serde_json::Value>().await {
        Ok(body) => body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("the server answered {status}"), str::to_string),
        Err(_) => format!("the server answered {status}"),
    }
}

pub async fn rollouts() -> Result<Vec<Summary>, String> {
    get("/api/rollouts").await
}

/// `None` when not signed in.
pub async fn whoami() -> Result<Option<Me>, String> {
    let response = match crate::boot::session() {
        // The page's boot script asked before the app started.
        Some(asked) => wasm_bindgen_futures::JsFuture::from(asked)
            .await
            .and_then(|raw| raw.dyn_into::<web_sys::Response>())
            .map(Response::from)
            .map_err(|e| {
                e.dyn_ref::<js_sys::Error>().map_or_else(
                    || "the request failed".to_string(),
                    |e| String::from(e.message()),
                )
            })?,
        None => Request::get("/api/session")
            .send()
            .await
            .map_err(|e| e.to_string())?,
    };
    match response.status() {
        200 => response.json().await.map(Some).map_err(|e| e.to_string()),
        // No session brought (204), or one that has ended (401).
        204 | 401 => Ok(None),
        _ => Err(error_text(response).await),
    }
}

/// A company sign-in the server offers: its name and where it starts.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SsoOffer {
    pub name: String,
    pub start: String,
}

/// The single sign-on the server offers, if any (404: none).
pub async fn sso() -> Option<SsoOffer> {
    let response = Request::get("/api/sso").send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

pub async fn sign_in(token: &str) -> Result<Me, String> {
    let response = Request::post("/api/session")
        .json(&serde_json::json!({ "token": token.trim() }))
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(error_text(response).await);
    }
    response.json().await.map_err(|e| e.to_string())
}

pub async fn sign_out(csrf: &str) -> Result<(), String> {
    delete("/api/session", csrf).await
}

/// DELETEs `path` with the session's CSRF token; the server's message on refusal.
async fn delete(path: &str, csrf: &str) -> Result<(), String> {
    let response = Request::delete(path)
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.ok() {
        Ok(())
    } else {
        Err(error_text(response).await)
    }
}

/// POSTs `body` to `path` with the session's CSRF token: the response when it succeeded, the
/// server's message on refusal.
async fn post_for(path: &str, body: &serde_json::Value, csrf: &str) -> Result<Response, String> {
    let response = Request::post(path)
        .header("X-CSRF-Token", csrf)
        .json(body)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.ok() {
        Ok(response)
    } else {
        Err(error_text(response).await)
    }
}

async fn post(path: &str, body: &serde_json::Value, csrf: &str) -> Result<(), String> {
    post_for(path, body, csrf).await.map(|_| ())
}

/// Makes a share link (lead or admin).
pub async fn create_share(rollout: &str, csrf: &str) -> Result<Share, String> {
    let path = format!("/api/rollouts/{rollout}/shares");
    let response = post_for(&path, &serde_json::json!({}), csrf).await?;
    response.json().await.map_err(|e| e.to_string())
}

/// Revokes a share link: sessions opened with it end at once.
pub async fn revoke_share(share: &str, csrf: &str) -> Result<(), String> {
    delete(&format!("/api/shares/{share}"), csrf).await
}

/// GETs `path` as JSON; the server's message on refusal.
async fn get<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, String> {
    let response = Request::get(path).send().await.map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(error_text(response).await);
    }
    response.json().await.map_err(|e| e.to_string())
}

/// Posts an action (its route's parameters after the rollout, e.g. the gate of an override)
/// with an optional reason; returns the server's refusal message if it refuses.
/// A lead's decision (proceed, extend, investigate) with its reason: recorded, changes nothing.
pub async fn decide(
    rollout: &str,
    decision: &str,
    reason: String,
    csrf: &str,
) -> Result<(), String> {
    let body = serde_json::json!({ "decision": decision, "reason": reason });
    post(&ActionRoute::Decide.path(rollout, &[]), &body, csrf).await
}

pub async fn act(
    rollout: &str,
    route: ActionRoute,
    params: &[&str],
    reason: Option<String>,
    csrf: &str,
) -> Result<(), String> {
    let body = serde_json::json!({ "reason": reason });
    post(&route.path(rollout, params), &body, csrf).await
}

/// Acknowledges an open alert (or kill), with what it turned out to be if known.
pub async fn ack(
    rollout: &str,
    alert: &str,
    outcome: Option<String>,
    reason: Option<String>,
    csrf: &str,
) -> Result<(), String> {
    let path = ActionRoute::Ack.path(rollout, &[alert]);
    post(
        &path,
        &serde_json::json!({ "outcome": outcome, "reason": reason }),
        csrf,
    )
    .await
}

/// Sets an `[[adjust]]` flag within the stage.
pub async fn adjust(
    rollout: &str,
    flag: &str,
    value: serde_json::Value,
    reason: String,
    csrf: &str,
) -> Result<(), String> {
    let path = ActionRoute::Adjust.path(rollout, &[flag]);
    post(
        &path,
        &serde_json::json!({ "value": value, "reason": reason }),
        csrf,
    )
    .await
}

/// Checks or unchecks a checklist item.
pub async fn check_item(
    rollout: &str,
    list: &str,
    item: &str,
    checked: bool,
    note: Option<String>,
    csrf: &str,
) -> Result<(), String> {
    let path = ActionRoute::Check.path(rollout, &[list, item]);
    post(
        &path,
        &serde_json::json!({ "checked": checked, "note": note }),
        csrf,
    )
    .await
}

/// The newest audit entries, newest first.
pub async fn audit(rollout: &str) -> Result<Vec<AuditEntry>, String> {
    let page: AuditPage = get(&format!("/api/rollouts/{rollout}/audit?limit=50")).await?;
    Ok(page.entries)
}

/// The newest records that mark the charts (stage changes, kills, overrides, alerts): fetched
/// apart from the timeline's 50 so a long checklist cannot push them off a 24h chart.
/// Each marker knows its entry (`seq`), and the entries come too: the record behind a marker.
pub async fn chart_marks(
    rollout: &str,
) -> Result<(Vec<cutover_core::chart::Marker>, Vec<AuditEntry>), String> {
    let page: AuditPage = get(&format!(
        "/api/rollouts/{rollout}/audit?marks=true&limit=500"
    ))
    .await?;
    let marks = page
        .entries
        .iter()
        .filter_map(|e| {
            cutover_core::chart::marker(&e.record).map(|m| cutover_core::chart::Marker {
                seq: Some(e.seq),
                ..m
            })
        })
        .collect();
    Ok((marks, page.entries))
}

/// Chart series from `from` to `to` (ms since the epoch): a chart zoomed by dragging.
pub async fn history_between(
    rollout: &str,
    from: i64,
    to: i64,
) -> Result<cutover_core::series::Frame, String> {
    let snapshot: cutover_core::snapshot::Snapshot =
        get(&format!("/api/rollouts/{rollout}?from={from}&to={to}")).await?;
    snapshot
        .frame
        .ok_or_else(|| "the server sent no series".to_string())
}

/// Chart series over `range` (`1h`, `6h`, `24h`) from the snapshot endpoint.
pub async fn history(rollout: &str, range: &str) -> Result<cutover_core::series::Frame, String> {
    let snapshot: cutover_core::snapshot::Snapshot =
        get(&format!("/api/rollouts/{rollout}?series={range}")).await?;
    snapshot
        .frame
        .ok_or_else(|| "the server sent no series".to_string())
}
