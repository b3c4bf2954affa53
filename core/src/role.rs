//! Who may do what. Roles are assigned to users; permissions are what a plan grants to roles.
//! The server enforces them; the app uses the same types only to hide buttons.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's role. The order is the order people are listed in (least to most authority for
/// humans; `Ingest` is a machine role and grants no human action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything, changes nothing (stakeholders, the wall screen).
    Viewer,
    /// On-call: checks items, progresses when gates are green, kills.
    Operator,
    /// Product team: rollback decisions.
    Product,
    /// Cutover lead: overrides gates with a reason, resumes after a kill.
    Lead,
    /// Manages users and share links.
    Admin,
    /// Services and CI pushing metric events.
    Ingest,
    /// cutover itself, when a rollback trigger fires. Never assigned to a user.
    System,
}

impl Role {
    /// Every role a user can hold (not `System`).
    pub const ALL: [Role; 6] = [
        Role::Viewer,
        Role::Operator,
        Role::Product,
        Role::Lead,
        Role::Admin,
        Role::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Product => "product",
            Role::Lead => "lead",
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::System => "system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: expected one of viewer, operator, product, lead, admin, ingest")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_name() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
        assert!(
            "system".parse::<Role>().is_err(),
            "nobody can be given the system role"
        );
    }
}
