//! The audit log as the API lists it: an entry (the record, its place, the evidence it was
//! decided on, and on request its link in the hash chain) and a page of them with the head and
//! the server's check of the whole chain. Apart from `rollout`, which makes the records: the
//! evidence holds gate verdicts, and gates read the rollout's readiness.

use serde::{Deserialize, Serialize};

use crate::rollout::AuditRecord;
use crate::time::Millis;

/// One audit log entry as the API lists it: the record, its place in the log, and the gate
/// and trigger verdicts the decision was taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its place in the rollout's log; pages go `before` it.
    pub seq: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Every gate's and trigger's verdict when the action was decided.
    #[serde(default)]
    pub evidence: crate::evidence::Evidence,
    /// The hash of the entry before it and its own, as stored: the chain on every page (the
    /// columns the hash covers come with `?chain=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Its link in the hash chain as stored, when asked for (`?chain=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainLink>,
    /// For a kill: when each instance of the fleet was first heard holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<Vec<Confirmed>>,
}

/// One instance's confirmation of a kill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    pub instance: String,
    /// The state version it held.
    pub version: u64,
    pub at: crate::time::Millis,
}

/// An audit entry's link in the hash chain, with every column its hash covers exactly as
/// stored, so anyone can recompute it from the API alone: the hash is SHA-256, in hex, of the
/// compact JSON array `[prev_hash, rollout, at, actor, role, action, record]`
/// (`cutover_core::chain::hash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
    pub rollout: String,
    pub at: Millis,
    pub actor: String,
    pub role: String,
    pub action: String,
    /// The stored record text, byte for byte.
    pub record: String,
}

/// How the server finds a rollout's audit chain (its own check, cached per head).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// The chain holds: every link, the head's signature, the state the newest entry left.
    pub holds: bool,
    /// Entries that hold, when it holds.
    pub entries: usize,
    /// Where it breaks, in words.
    pub problem: Option<String>,
    /// Whether the head's signature was checked (the server has an audit key).
    pub signed: bool,
}

/// A page of the audit log, newest first (`GET /api/rollouts/{id}/audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next page, if this one was full.
    pub next_before: Option<i64>,
    /// The rollout's head now: the newest entry's hash. Kept outside, it shows any later
    /// rewrite of the log.
    #[serde(default)]
    pub head: Option<String>,
    /// The server's check of the whole chain: a broken one is said on every page.
    #[serde(default)]
    pub integrity: Option<Integrity>,
}
