//! Who may do what. Roles are assigned to users; permissions are what a plan grants to roles.
//! The server enforces them; the app uses the same types only to hide buttons.
//!
//! Besides the built-in roles a plan may define its own (`[[role]] id = "security_lead"`): a
//! [`Role::Named`] holds its name inline, so a role stays `Copy` and bounded in size.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest name a plan-defined role may have.
pub const MAX_ROLE_NAME: usize = 32;

/// A user's role. The order is the order people are listed in (least to most authority for
/// humans; `Ingest` is a machine role and grants no human action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// Services reading their flags (`/flags`, OpenFeature's OFREP): reads, never acts.
    Flags,
    /// cutover itself, when a rollback trigger fires. Never assigned to a user.
    System,
    /// A role a plan defines (security lead, database lead): it may do what the plan grants
    /// it and nothing else.
    Named(RoleName),
}

/// A plan-defined role's name: 1 to 32 lowercase letters, digits or `_`, held inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName {
    len: u8,
    bytes: [u8; MAX_ROLE_NAME],
}

impl RoleName {
    /// `None` unless `name` is 1..=32 of `a-z`, `0-9`, `_`, starting with a letter.
    pub fn new(name: &str) -> Option<RoleName> {
        let ok = !name.is_empty()
            && name.len() <= MAX_ROLE_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return None;
        }
        let mut bytes = [0; MAX_ROLE_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(RoleName {
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Role {
    /// Every built-in role a user can hold (not `System`).
    pub const ALL: [Role; 7] = [
        Role::Viewer,
        Role::Operator,
        Role::Product,
        Role::Lead,
        Role::Admin,
        Role::Ingest,
        Role::Flags,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Product => "product",
            Role::Lead => "lead",
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Flags => "flags",
            Role::System => "system",
            Role::Named(name) => name.as_str(),
        }
    }

    /// Whether a plan defines this role rather than cutover.
    pub fn is_named(&self) -> bool {
        matches!(self, Role::Named(_))
    }

    /// Reads a role as stored or sent (the system role included): built-in names first,
    /// anything else well formed is a plan-defined role.
    pub fn from_wire(s: &str) -> Option<Role> {
        if s == "system" {
            return Some(Role::System);
        }
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .or_else(|| RoleName::new(s).map(Role::Named))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role `{0}`: expected one of viewer, operator, product, lead, admin, ingest, flags, or a plan's own role (lowercase letters, digits and _, at most 32)"
)]
pub struct UnknownRole(pub String);

/// What a person may be given: a built-in role other than `system`, or a well-formed name
/// (whether a plan defines it is checked where the plans are known).
impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match Role::from_wire(s) {
            Some(Role::System) | None => Err(UnknownRole(s.to_string())),
            Some(role) => Ok(role),
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Role::from_wire(&text)
            .ok_or_else(|| serde::de::Error::custom(UnknownRole(text.into_owned())))
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
        assert!("Root".parse::<Role>().is_err());
        assert!(
            "system".parse::<Role>().is_err(),
            "nobody can be given the system role"
        );
        let named: Role = "security_lead".parse().unwrap();
        assert!(named.is_named());
        assert_eq!(named.as_str(), "security_lead");
        assert_eq!(
            serde_json::from_str::<Role>(&serde_json::to_string(&named).unwrap()).unwrap(),
            named
        );
        assert_eq!(
            serde_json::from_str::<Role>("\"system\"").unwrap(),
            Role::System
        );
    }

    #[test]
    fn a_named_role_is_bounded_and_plain() {
        assert!(RoleName::new(&"a".repeat(33)).is_none());
        assert!(RoleName::new(&"a".repeat(32)).is_some());
        for bad in ["", "1st", "Lead", "db-lead", "lead ", "léad"] {
            assert!(RoleName::new(bad).is_none(), "{bad:?}");
        }
    }
}
