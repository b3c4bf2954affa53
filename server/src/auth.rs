//! Who is calling: a bearer token resolved to a user. Handlers take `Caller` and then ask for
//! the permission they need, so a missing token is 401 and a wrong role is 403.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use cutover_core::role::Role;

use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::User;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl Caller {
    /// 403 unless the caller holds one of `roles`; `action` names what was attempted.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
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
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("sign in: send Authorization: Bearer <token>".into())
        })?;
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
        Ok(Caller(user))
    }
}
