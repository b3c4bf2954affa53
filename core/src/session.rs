//! Who a browser is signed in as, and the read-only links made for stakeholders: what the
//! server answers and the app reads, one type each.

use serde::{Deserialize, Serialize};

use crate::role::Role;
use crate::time::Millis;

/// A signed-in browser's identity (`POST /api/session`, `GET /api/session`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub name: String,
    pub role: Role,
    /// Sent back in `x-csrf-token` with every change.
    pub csrf: String,
    /// Set for users and share-link sessions limited to one rollout.
    pub rollout: Option<String>,
}

/// A read-only link to one rollout, as the server made it (`POST .../shares`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLink {
    pub id: String,
    /// `/s/<secret>`: shown once, never stored.
    pub path: String,
    pub expires_at: Millis,
}
