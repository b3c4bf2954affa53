//! Handlers for actions on a rollout: start, progress, pause, resume, kill, override a gate,
//! check or uncheck an item, approve. Each one: authenticate, decide in core, commit the new
//! state and its audit record in one transaction, then tell every viewer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cutover_core::audit::AuditPage;
use cutover_core::rollout::{Action, Decision, Request};
use cutover_core::snapshot::Snapshot;
use cutover_core::time::{HOUR, Millis, Span};
use cutover_core::window::StoreConfig;
use serde::Deserialize;
use serde_json::json;

use crate::clock::now;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::heavy::Heavy;
use crate::http::rollouts::find;
use crate::runtime::commit::commit_keyed;
use crate::runtime::state::{AppState, Rollout};
use crate::store::Claim;

/// The optional JSON body of an action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub reason: Option<String>,
    /// For checklist items: check (default) or uncheck.
    pub checked: Option<bool>,
    /// For checklist items: a note kept with the check.
    pub note: Option<String>,
    /// For a schedule: T-0, in milliseconds since the epoch.
    pub t0: Option<Millis>,
    /// For a decision: proceed, extend or investigate.
    pub decision: Option<Decision>,
    /// For an acknowledgement: what the alert turned out to be.
    pub outcome: Option<cutover_core::rollout::AckOutcome>,
    /// For an adjustment: the flag's new value (a boolean, number or text).
    pub value: Option<cutover_core::flag::FlagValue>,
}

/// The longest reason or note kept: a paragraph, not a document (each is stored in the audit
/// log, sent to every viewer and to every channel).
pub const MAX_TEXT_BYTES: usize = 4 * 1024;

fn body(bytes: &Bytes) -> Result<ActionBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionBody::default());
    }
    let body: ActionBody =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    for (name, text) in [("reason", &body.reason), ("note", &body.note)] {
        if let Some(text) = text
            && text.len() > MAX_TEXT_BYTES
        {
            return Err(ApiError::BadRequest(format!(
                "{name}: at most {MAX_TEXT_BYTES} bytes (this one has {})",
                text.len()
            )));
        }
    }
    Ok(body)
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// How long a retry waits for the first request with its key to finish.
const IN_PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

/// Decides and commits one action; answers with the new snapshot. An `Idempotency-Key`
/// header makes a retry of the same request return the first answer instead of acting twice;
/// the key is bound to the request (a different action, reason or item under the same key is
/// a 422) and claimed atomically, so concurrent retries act once.
async fn act(
    state: &AppState,
    id: &str,
    caller: Caller,
    headers: &HeaderMap,
    action: Action,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    caller.may_see(id)?;
    let rollout = find(state, id)?;
    let key = idempotency_key(headers, &caller, id)?;
    if let Some(key) = &key
        && let Some(replay) = claim(state, key, id, &action, &reason).await?
    {
        return Ok(replay);
    }
    let request = Request {
        actor: caller.0.actor(),
        action,
        reason,
        at: now(),
    };
    // Once decided on, the action finishes even if the client goes away or the request times
    // out: a kill must not be lost to a dropped connection, and a claimed key must be settled.
    let task = {
        let (state, key) = (state.clone(), key.clone());
        tokio::spawn(async move { settle(&state, &rollout, key.as_deref(), request).await })
    };
    match task.await {
        Ok(answer) => answer,
        Err(e) => {
            // A bug in the action: its claim must not block every retry for a day.
            if let Some(key) = &key {
                let _ = state.storage.release_idempotency(key).await;
            }
            Err(ApiError::Internal(anyhow::anyhow!(
                "action task failed: {e}"
            )))
        }
    }
}

/// The caller's `Idempotency-Key`, scoped to the caller and the rollout, if sent.
fn idempotency_key(
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            ))
        })?;
    Ok(Some(format!("{}:{id}:{key}", caller.0.name)))
}

/// Claims `key` for this request: `None` when this request is to act, the first answer when
/// it is a retry; refused when the key was used for another request or is still busy.
async fn claim(
    state: &AppState,
    key: &str,
    id: &str,
    action: &Action,
    reason: &Option<String>,
) -> Result<Option<Response>, ApiError> {
    let fingerprint = crate::store::hash_token(
        &serde_json::to_string(&json!({ "action": action, "reason": reason }))
            .map_err(anyhow::Error::from)?,
    );
    let deadline = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
    loop {
        match state
            .storage
            .claim_idempotency(key, id, &fingerprint, now())
            .await?
        {
            Claim::Claimed => return Ok(None),
            // Committed, but its server died before answering: the state as it is now.
            Claim::Replay(status, body) if body.is_empty() => {
                let rollout = find(state, id)?;
                let snapshot = rollout.snapshot(now()).await;
                let body = serde_json::to_string(&snapshot).map_err(anyhow::Error::from)?;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return Ok(Some(json_response(status, body)));
            }
            Claim::Replay(status, body) => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return Ok(Some(json_response(status, body)));
            }
            Claim::Mismatch => {
                return Err(ApiError::Unprocessable(
                    "this Idempotency-Key was used for a different request; use a new key".into(),
                ));
            }
            Claim::InProgress if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Claim::InProgress => {
                return Err(ApiError::Conflict(
                    "a request with this Idempotency-Key is still in progress; retry".into(),
                ));
            }
        }
    }
}

/// Commits `request` and, under an idempotency key, keeps its answer for retries.
async fn settle(
    state: &AppState,
    rollout: &Rollout,
    key: Option<&str>,
    request: Request,
) -> Result<Response, ApiError> {
    let result = commit_keyed(state, rollout, request, key)
        .await
        .map_err(ApiError::from);
    let Some(key) = key else {
        let snapshot = result?;
        let body = serde_json::to_string(&snapshot).map_err(anyhow::Error::from)?;
        return Ok(json_response(StatusCode::OK, body));
    };
    match result {
        Ok(snapshot) => {
            let body = serde_json::to_string(&snapshot).map_err(anyhow::Error::from)?;
            state.storage.remember_response(key, 200, &body).await?;
            Ok(json_response(StatusCode::OK, body))
        }
        // A refusal the state may lift (409) or our own fault: a retry decides again.
        Err(e @ (ApiError::Conflict(_) | ApiError::Internal(_))) => {
            state.storage.release_idempotency(key).await?;
            Err(e)
        }
        // Any other refusal is final for this request: a retry hears it again.
        Err(e) => {
            let response = e.into_response();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let body = String::from_utf8_lossy(&bytes).into_owned();
            state
                .storage
                .remember_response(key, status.as_u16(), &body)
                .await?;
            Ok(json_response(status, body))
        }
    }
}

macro_rules! simple_action {
    ($name:ident, $action:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            Path(id): Path<String>,
            caller: Caller,
            headers: HeaderMap,
            bytes: Bytes,
        ) -> Result<Response, ApiError> {
            let body = body(&bytes)?;
            act(&state, &id, caller, &headers, $action, body.reason).await
        }
    };
}

simple_action!(start, Action::Start);
simple_action!(progress, Action::Progress);
simple_action!(pause, Action::Pause);
simple_action!(resume, Action::Resume);
simple_action!(kill, Action::Kill);
simple_action!(step_back, Action::StepBack);
simple_action!(close, Action::Close);
simple_action!(approve, Action::Approve);

/// `POST .../schedule` with `{"t0": ms}`: T-0 set ahead of the start.
pub async fn schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&bytes)?;
    let t0 = body.t0.ok_or_else(|| {
        ApiError::BadRequest("body: t0 (milliseconds since the epoch) is required".into())
    })?;
    act(
        &state,
        &id,
        caller,
        &headers,
        Action::Schedule { t0 },
        body.reason,
    )
    .await
}

/// `POST .../decisions` with `{"decision": "proceed"|"extend"|"investigate", "reason": ...}`:
/// a lead's decision that changes no state, kept with the evidence of the moment.
pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&bytes)?;
    let decision = body.decision.ok_or_else(|| {
        ApiError::BadRequest("body: decision (proceed, extend or investigate) is required".into())
    })?;
    act(
        &state,
        &id,
        caller,
        &headers,
        Action::Decide { decision },
        body.reason,
    )
    .await
}

/// `POST .../gates/{gate}/override` with a reason.
pub async fn override_gate(
    State(state): State<AppState>,
    Path((id, gate)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&bytes)?;
    act(
        &state,
        &id,
        caller,
        &headers,
        Action::Override { gate },
        body.reason,
    )
    .await
}

/// `POST .../alerts/{alert}/ack`: someone is on an open alert (or `kill`, an automatic kill).
pub async fn ack(
    State(state): State<AppState>,
    Path((id, alert)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&bytes)?;
    act(
        &state,
        &id,
        caller,
        &headers,
        Action::Ack {
            alert,
            outcome: body.outcome,
        },
        body.reason,
    )
    .await
}

/// `POST .../adjustments/{flag}` with `{"value": ..., "reason": ...}`: an `[[adjust]]` flag
/// set within the stage (the plan bounds it; the next stage change or a kill undoes it).
pub async fn adjust(
    State(state): State<AppState>,
    Path((id, flag)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&bytes)?;
    let value = body.value.ok_or_else(|| {
        ApiError::BadRequest("body: value (the flag's new value) is required".into())
    })?;
    act(
        &state,
        &id,
        caller,
        &headers,
        Action::Adjust { flag, value },
        body.reason,
    )
    .await
}

/// `POST .../checklists/{list}/items/{item}` with `{"checked": true|false, "note": ...}`.
pub async fn check_item(
    State(state): State<AppState>,
    Path((id, list, item)): Path<(String, String, String)>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = body(&bytes)?;
    let action = if body.checked.unwrap_or(true) {
        Action::Check { list, item }
    } else {
        Action::Uncheck { list, item }
    };
    act(
        &state,
        &id,
        caller,
        &headers,
        action,
        body.note.or(body.reason),
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// Chart history to include, e.g. `15m`, `6h`, `7d` (at most what the store keeps).
    series: Option<String>,
    /// Point width, e.g. `1m` (default: about 360 points, whole 10 s buckets).
    step: Option<String>,
    /// An absolute range instead (ms since the epoch, both or neither): what a chart zoomed
    /// by dragging shows. Within what the store keeps, ending no later than now.
    from: Option<i64>,
    to: Option<i64>,
}

/// `GET /api/rollouts/{id}[?series=1h[&step=1m]]`: the snapshot, with chart series if asked.
pub async fn snapshot(
    State(state): State<AppState>,
    Extension(heavy): Extension<Arc<Heavy>>,
    Path(id): Path<String>,
    caller: Caller,
    crate::http::error::ApiQuery(q): crate::http::error::ApiQuery<SnapshotQuery>,
) -> Result<Json<Snapshot>, ApiError> {
    caller.may_see(&id)?;
    let rollout = find(&state, &id)?;
    let at = now();
    let mut snapshot = rollout.snapshot(at).await;
    let config = rollout.metric_config();
    if let Some((end, range, step)) = q.chart_range(&config, at)? {
        // Up to 2,000 points a series over a week of buckets: CPU work, off the async workers.
        let frame = heavy
            .run_shared(move || rollout.frame(end, range, step))
            .await?;
        snapshot.frame = Some(frame);
    }
    Ok(Json(snapshot))
}

impl SnapshotQuery {
    /// The chart range and step asked for, if any: at most what the store keeps, in whole
    /// buckets of the widest width the range reaches (so every point merges as many buckets
    /// as the next), never more than 2,000 points: where the range ends, its length, the step.
    fn chart_range(
        &self,
        store: &StoreConfig,
        now: Millis,
    ) -> Result<Option<(Millis, Millis, Millis)>, ApiError> {
        use crate::runtime::charts::LIVE_STEP;
        let keep = store.lookback();
        let (end, range) = match (self.series.as_deref(), self.from, self.to) {
            (None, None, None) => return Ok(None),
            (Some(range), None, None) => {
                let range = Span::parse(range)
                    .map(|s| s.0)
                    .map_err(|e| ApiError::BadRequest(format!("series: {e}")))?;
                (now, range)
            }
            (None, Some(from), Some(to)) => {
                // Checked arithmetic: both are whatever a client sent. A range dragged to the
                // newest point ends in the step still filling, a little past now: clamped.
                let oldest = now.saturating_sub(keep);
                let to = if (now..=now.saturating_add(HOUR)).contains(&to) {
                    now
                } else {
                    to
                };
                if !(oldest..=now).contains(&from) || !(from..=now).contains(&to) {
                    return Err(ApiError::BadRequest(format!(
                        "from and to: from before to, within the last {} (what the store keeps)",
                        Span(keep).human()
                    )));
                }
                (to, to - from)
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "series, or from and to: one range".into(),
                ));
            }
        };
        if !(LIVE_STEP..=keep).contains(&range) {
            return Err(ApiError::BadRequest(format!(
                "series: between 10s and {}, what the store keeps",
                Span(keep).human()
            )));
        }
        let step = self
            .step
            .as_deref()
            .map(|t| {
                Span::parse(t)
                    .map(|s| s.0)
                    .map_err(|e| ApiError::BadRequest(format!("step: {e}")))
            })
            .transpose()?;
        // The widest buckets the range reaches back into, counted from now.
        let bucket = store
            .width_at(now.saturating_sub(end).saturating_add(range))
            .max(LIVE_STEP);
        let step = cutover_core::time::step_within(range, step, bucket, 360, 2000)
            .map_err(|e| ApiError::BadRequest(format!("step: {e}")))?;
        Ok(Some((end, range, step)))
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
    limit: Option<i64>,
    /// Only the records that mark the charts (stage changes, kills, overrides, alerts).
    #[serde(default)]
    marks: bool,
    /// Each entry with its link in the hash chain, to verify from the API alone.
    #[serde(default)]
    chain: bool,
}

/// `GET /api/rollouts/{id}/audit?before=SEQ&limit=N&marks=true&chain=true`: newest first,
/// with the head and the server's check of the whole chain (a broken one said on every page).
pub async fn audit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    crate::http::error::ApiQuery(q): crate::http::error::ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.may_see(&id)?;
    let rollout = find(&state, &id)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let entries = state
        .storage
        .audit(&id, q.before, limit, q.marks, q.chain)
        .await?;
    let mut entries = entries;
    // A kill's record carries when each instance of the fleet confirmed it.
    for entry in &mut entries {
        if matches!(entry.record.action, Action::Kill) {
            let confirmed = state.storage.confirmations(&id, entry.record.at).await?;
            entry.confirmations = Some(confirmed);
        }
    }
    let next_before = entries.last().map(|e| e.seq);
    let (head, integrity) = rollout.integrity(&state.storage).await?;
    if !integrity.holds {
        tracing::warn!(rollout = %id, problem = ?integrity.problem, "the audit chain is broken");
    }
    Ok(Json(AuditPage {
        entries,
        next_before,
        head,
        integrity: Some(integrity),
    }))
}

/// `GET /api/rollouts/{id}/flags`: what services poll. ETag is the state version. Read from
/// the published copy, so a poll never waits on an action being committed. A reader that
/// names itself (`X-Cutover-Instance`) is counted in the fleet at the version it sends back
/// (`If-None-Match`) or says it applied (`X-Cutover-Applied`).
pub async fn flags(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.may_read_flags(&id)?;
    let rollout = find(&state, &id)?;
    let reader = crate::http::instances::reader(&headers)?;
    let published = rollout.watch.published();
    let version = published.state.version;
    if let Some(r) = reader {
        let held = r
            .applied
            .or_else(|| crate::http::instances::etag_version(&headers));
        // A version not yet published here (a replica a moment behind, or a confused
        // reader) is not counted: nothing can have applied it.
        if let Some(held) = held.filter(|v| *v <= version) {
            rollout.watch.heard(&r.instance, held, crate::clock::now());
        }
    }
    let etag = format!("\"{version}\"");
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response());
    }
    let mut body = serde_json::to_value(&published.desired).map_err(anyhow::Error::from)?;
    // Whole numbers as integers, as OFREP answers them: a typed reader (Go's int, Java's
    // Integer) refuses `5.0` where it takes `5`. The stored state keeps its floats.
    if let Some(flags) = body
        .get_mut("flags")
        .and_then(serde_json::Value::as_object_mut)
    {
        for (name, value) in &published.desired.flags {
            flags.insert(name.clone(), value.to_json());
        }
    }
    body["traffic"] = cutover_core::flag::FlagValue::Number(published.desired.traffic).to_json();
    Ok(([("etag", etag)], Json(body)).into_response())
}
