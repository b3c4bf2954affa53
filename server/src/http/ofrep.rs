//! OpenFeature's Remote Evaluation Protocol (OFREP): a service evaluates its flags through any
//! OpenFeature SDK's OFREP provider, pointed at cutover. Who is in a stage's share is
//! `cutover_core::targeting`'s stable hash of the evaluation context's `targetingKey`.
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags` (bulk) over
//!   every rollout the caller may see (a key two rollouts set is an error: use the next);
//! - `POST /api/rollouts/{id}/ofrep/v1/evaluate/flags[/{key}]` for one rollout (a provider's
//!   base URL `https://cutover.example/api/rollouts/{id}`).
//!
//! Any sign-in that may see the rollout may read its flags; the `flags` role exists for
//! services that should read nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cutover_core::flag::FlagValue;
use cutover_core::targeting::{self, Evaluation, EvaluationError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::runtime::state::{AppState, Rollout};

/// Largest evaluation request body: a context, not a batch.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest targeting key.
const MAX_TARGETING_KEY: usize = 1024;

/// An OFREP error answer: `{key, errorCode, errorDetails}`.
fn error(status: StatusCode, key: Option<&str>, code: &str, details: String) -> Response {
    let mut body = json!({ "errorCode": code, "errorDetails": details });
    if let Some(key) = key {
        body["key"] = json!(key);
    }
    (status, axum::Json(body)).into_response()
}

/// The context's targeting key, or why the body is not an evaluation request.
fn targeting_key(body: &[u8]) -> Result<Option<String>, (&'static str, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| ("PARSE_ERROR", format!("the body is not JSON: {e}")))?;
    let context = match request.get("context") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(c)) => c,
        Some(_) => return Err(("INVALID_CONTEXT", "context must be an object".into())),
    };
    match context.get("targetingKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) if k.len() <= MAX_TARGETING_KEY => Ok(Some(k.clone())),
        Some(Value::String(_)) => Err((
            "INVALID_CONTEXT",
            format!("targetingKey is longer than {MAX_TARGETING_KEY} bytes"),
        )),
        Some(_) => Err(("INVALID_CONTEXT", "targetingKey must be a string".into())),
    }
}

/// A flag value as JSON: whole numbers as integers, so an integer flag reads as one.
fn json_value(v: &FlagValue) -> Value {
    match v {
        FlagValue::Bool(b) => json!(b),
        FlagValue::Text(t) => json!(t),
        FlagValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => json!(*n as i64),
        FlagValue::Number(n) => json!(n),
    }
}

fn success(e: &Evaluation, rollout: &Rollout, version: u64) -> Value {
    let mut body = json!({
        "key": e.key,
        "reason": e.reason,
        "variant": e.variant,
        "metadata": { "rollout": rollout.plan.id, "version": version },
    });
    if let Some(v) = &e.value {
        body["value"] = json_value(v);
    }
    body
}

fn failure(key: &str, e: &EvaluationError) -> Value {
    json!({ "key": key, "errorCode": e.code(), "errorDetails": e.to_string() })
}

/// The rollouts a key may be read from: the one in the path, or every one the caller sees.
fn scope(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
) -> Result<Vec<Arc<Rollout>>, ApiError> {
    match id {
        Some(id) => {
            caller.may_read_flags(id)?;
            Ok(vec![crate::http::rollouts::find(state, id)?])
        }
        None => Ok(state
            .rollouts
            .values()
            .filter(|r| caller.may_read_flags(&r.plan.id).is_ok())
            .cloned()
            .collect()),
    }
}

async fn single(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    key: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let user = match targeting_key(body) {
        Ok(user) => user,
        Err((code, details)) => {
            return Ok(error(StatusCode::BAD_REQUEST, Some(key), code, details));
        }
    };
    let owners: Vec<Arc<Rollout>> = scope(state, caller, id)?
        .into_iter()
        .filter(|r| targeting::flag_keys(&r.plan).contains(key))
        .collect();
    let rollout = match owners.as_slice() {
        [one] => one,
        [] => {
            return Ok(error(
                StatusCode::NOT_FOUND,
                Some(key),
                "FLAG_NOT_FOUND",
                format!("no rollout you may see sets flag \"{key}\""),
            ));
        }
        many => {
            let ids: Vec<&str> = many.iter().map(|r| r.plan.id.as_str()).collect();
            return Ok(error(
                StatusCode::BAD_REQUEST,
                Some(key),
                "GENERAL",
                format!(
                    "flag \"{key}\" is set by rollouts {}: evaluate it at /api/rollouts/{{id}}/ofrep/v1/evaluate/flags/{key}",
                    ids.join(", ")
                ),
            ));
        }
    };
    let published = rollout.watch.published();
    let current = &published.state;
    // A reader under one rollout's path may say which version it applied.
    if id.is_some()
        && let Some(r) = crate::http::instances::reader(headers)?
        && let Some(v) = r.applied.filter(|v| *v <= current.version)
    {
        rollout.watch.heard(&r.instance, v, crate::clock::now());
    }
    Ok(
        match targeting::evaluate(&rollout.plan, current, key, user.as_deref()) {
            Ok(e) => axum::Json(success(&e, rollout, current.version)).into_response(),
            Err(e @ EvaluationError::FlagNotFound { .. }) => {
                error(StatusCode::NOT_FOUND, Some(key), e.code(), e.to_string())
            }
            Err(e) => error(StatusCode::BAD_REQUEST, Some(key), e.code(), e.to_string()),
        },
    )
}

async fn bulk(
    state: &AppState,
    caller: &Caller,
    id: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let user = match targeting_key(body) {
        Ok(user) => user,
        Err((code, details)) => return Ok(error(StatusCode::BAD_REQUEST, None, code, details)),
    };
    let reader = crate::http::instances::reader(headers)?;
    // key -> its evaluation, or the rollouts that all set it.
    let mut flags: BTreeMap<String, Result<Value, Vec<String>>> = BTreeMap::new();
    let rollouts = scope(state, caller, id)?;
    let mut held = Vec::with_capacity(rollouts.len());
    for rollout in &rollouts {
        let published = rollout.watch.published();
        let current = &published.state;
        held.push(published.changed);
        for key in targeting::flag_keys(&rollout.plan) {
            let value = match targeting::evaluate(&rollout.plan, current, key, user.as_deref()) {
                Ok(e) => success(&e, rollout, current.version),
                Err(e) => failure(key, &e),
            };
            match flags.get_mut(key) {
                None => {
                    flags.insert(key.to_string(), Ok(value));
                }
                Some(Ok(_)) => {
                    let first = flags
                        .get(key)
                        .and_then(|f| f.as_ref().ok())
                        .and_then(|v| v["metadata"]["rollout"].as_str().map(String::from))
                        .unwrap_or_default();
                    flags.insert(key.to_string(), Err(vec![first, rollout.plan.id.clone()]));
                }
                Some(Err(ids)) => ids.push(rollout.plan.id.clone()),
            }
        }
    }
    let flags: Vec<Value> = flags
        .into_iter()
        .map(|(key, f)| match f {
            Ok(v) => v,
            Err(ids) => json!({
                "key": key,
                "errorCode": "GENERAL",
                "errorDetails": format!("set by rollouts {}: evaluate it under /api/rollouts/{{id}}/ofrep", ids.join(", ")),
            }),
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "flags": flags })).map_err(anyhow::Error::from)?;
    // The answer's own hash: 304 exactly when the answer would be the same.
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    // A reader whose answer is unchanged holds every rollout's newest change; one under a
    // rollout's path may also say which version it applied.
    if let Some(r) = reader {
        let at = crate::clock::now();
        for (rollout, changed) in rollouts.iter().zip(held) {
            let said = r
                .applied
                .filter(|v| id.is_some() && *v <= rollout.watch.published().state.version);
            if let Some(v) = said.or(unchanged.then_some(changed)) {
                rollout.watch.heard(&r.instance, v, at);
            }
        }
    }
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_string()),
        ],
        body,
    )
        .into_response())
}

/// `POST /ofrep/v1/evaluate/flags/{key}`
pub async fn evaluate(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    single(&state, &caller, None, &key, &headers, &body).await
}

/// `POST /api/rollouts/{id}/ofrep/v1/evaluate/flags/{key}`
pub async fn evaluate_in(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    single(&state, &caller, Some(&id), &key, &headers, &body).await
}

/// `POST /ofrep/v1/evaluate/flags`
pub async fn evaluate_all(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    bulk(&state, &caller, None, &headers, &body).await
}

/// `POST /api/rollouts/{id}/ofrep/v1/evaluate/flags`
pub async fn evaluate_all_in(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    bulk(&state, &caller, Some(&id), &headers, &body).await
}
