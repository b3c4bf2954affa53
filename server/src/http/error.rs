//! The one error type handlers return. Each variant states its status; the body is always
//! `{"error": {"code": ..., "message": ...}}`. Client mistakes are 4xx with a sentence that says
//! what to fix; server faults are 500 with a generic message, and the detail goes to the log.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cutover_core::rollout::Refusal;
use serde_json::json;

use crate::runtime::commit::CommitError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the message says which part.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials that match no user.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: a known user whose role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such rollout, gate, item...
    #[error("{0}")]
    NotFound(String),
    /// 409: the action is not allowed in the current state; the message says why.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 422: well-formed but every record was rejected.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: this caller has too much running already.
    #[error("{0}")]
    TooManyRequests(String),
    /// 429 with `Retry-After` (seconds): a limit that frees up by itself.
    #[error("{0}")]
    RetryLater(String, u64),
    /// 500: our fault. The detail is logged, never sent.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::TooManyRequests(_) | ApiError::RetryLater(..) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// `axum::extract::Query` whose rejection has the JSON error shape, so `?serie=1h` is a 400
/// saying "unknown field `serie`" like every other client mistake, not a plain-text one.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::Forbidden { .. } => ApiError::Forbidden(message),
            Refusal::ReasonRequired { .. } | Refusal::Invalid(_) => {
                ApiError::Unprocessable(message)
            }
            Refusal::Unknown(_) => ApiError::NotFound(message),
            Refusal::WrongPhase { .. }
            | Refusal::NotReady { .. }
            | Refusal::Duplicate(_)
            | Refusal::FirstStage { .. } => ApiError::Conflict(message),
        }
    }
}

impl From<CommitError> for ApiError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Refused(refusal) => refusal.into(),
            CommitError::Contended | CommitError::PlanMismatch(_) => {
                ApiError::Conflict(e.to_string())
            }
            CommitError::Store(e) => ApiError::Internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "internal error");
        }
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        match self {
            ApiError::RetryLater(_, seconds) => (
                status,
                [(header::RETRY_AFTER, seconds.to_string())],
                Json(body),
            )
                .into_response(),
            _ => (status, Json(body)).into_response(),
        }
    }
}
