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
    /// More roles a person in several mapped groups holds (single sign-on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Role>,
}

impl SessionInfo {
    /// Whether the session holds `role`, first or among the others.
    pub fn holds(&self, role: Role) -> bool {
        self.role == role || self.also.contains(&role)
    }

    /// Whether any role the session holds is among `allowed`.
    pub fn any_of(&self, allowed: &[Role]) -> bool {
        allowed.iter().any(|r| self.holds(*r))
    }
}

/// A read-only link to one rollout, as the server made it (`POST .../shares`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLink {
    pub id: String,
    /// `/s/<secret>`: shown once, never stored.
    pub path: String,
    pub expires_at: Millis,
}
