//! `GET /api/rollouts/{id}/receivers`: each actuator's and channel's status with the
//! receiver's own answer to its last failed call. That answer can carry anything a receiver
//! chose to say (an internal sign-in page, a stack trace), so it is kept out of the snapshot
//! every viewer and share link gets, and shown here to operators, leads and admins only.

use axum::Json;
use axum::extract::{Path, State};
use cutover_core::role::Role;
use serde::Serialize;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::rollouts::find;
use crate::runtime::state::AppState;

/// Who may read receivers' answers.
pub const READERS: [Role; 3] = [Role::Operator, Role::Lead, Role::Admin];

/// One receiver: its id, what everyone sees of its last failure, and what it answered.
#[derive(Debug, Serialize)]
pub struct Receiver {
    pub id: String,
    pub kind: String,
    pub error: Option<String>,
    pub answer: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Receivers {
    pub actuators: Vec<Receiver>,
    pub channels: Vec<Receiver>,
}

pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Json<Receivers>, ApiError> {
    caller.may_see(&id)?;
    caller.require(&READERS, "reading receivers' answers")?;
    let rollout = find(&state, &id)?;
    let actuators = rollout
        .actuators
        .iter()
        .map(|a| {
            let status = a.status();
            Receiver {
                id: status.id,
                kind: status.kind,
                error: status.error,
                answer: a.answer(),
            }
        })
        .collect();
    let channels = rollout
        .channels
        .statuses()
        .into_iter()
        .zip(rollout.channels.answers())
        .map(|(status, (_, answer))| Receiver {
            id: status.id,
            kind: status.kind,
            error: status.error,
            answer,
        })
        .collect();
    Ok(Json(Receivers {
        actuators,
        channels,
    }))
}
