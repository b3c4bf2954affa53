//! What an audit entry was decided on: every gate's and trigger's verdict of the moment and
//! each checklist's done and open items (or, for a plan change, the two plan hashes). One
//! typed shape for the server that writes it and every reader (the page's record, the
//! launch report), so no reader can take a quiet trigger for a breaching one by indexing a
//! loose JSON value with the wrong word.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::gates::{GateStatus, TriggerStatus};

/// The evidence kept with an audit entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Every gate's latest verdict (none before the first evaluation).
    #[serde(deserialize_with = "lenient")]
    pub gates: Option<Vec<GateStatus>>,
    /// Every trigger's latest verdict.
    #[serde(deserialize_with = "lenient")]
    pub triggers: Option<Vec<TriggerStatus>>,
    /// Each checklist's items, by list id.
    pub checklists: BTreeMap<String, ChecklistEvidence>,
    /// A plan change: the plan's hash before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanChange>,
    /// How far the fleet had applied what was published when the action was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<crate::confirm::Confirmation>,
}

/// A checklist's items when the action was decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChecklistEvidence {
    pub done: Vec<String>,
    pub open: Vec<String>,
}

/// The plan a rollout was moved from and to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    pub from: String,
    pub to: String,
}

/// Evidence written by an older server whose gate or trigger shape no longer parses is kept
/// as absent rather than making the whole audit page unreadable.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

impl Evidence {
    pub fn gates(&self) -> &[GateStatus] {
        self.gates.as_deref().unwrap_or_default()
    }

    pub fn triggers(&self) -> &[TriggerStatus] {
        self.triggers.as_deref().unwrap_or_default()
    }

    /// The triggers that were breaching or had fired (see [`TriggerStatus::alarming`]): the
    /// ones a reader must see. A quiet trigger is never among them.
    pub fn triggers_breaching(&self) -> impl Iterator<Item = &TriggerStatus> {
        self.triggers().iter().filter(|t| t.alarming())
    }

    /// Each checklist with open items, with how many: `("t-30", 2)`.
    pub fn checklists_open(&self) -> impl Iterator<Item = (&str, usize)> {
        self.checklists
            .iter()
            .filter(|(_, l)| !l.open.is_empty())
            .map(|(id, l)| (id.as_str(), l.open.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_partial_shapes_read() {
        let plan: Evidence = serde_json::from_str(r#"{"plan": {"from": "a", "to": "b"}}"#).unwrap();
        assert_eq!(plan.plan.unwrap().to, "b");
        let none: Evidence =
            serde_json::from_str(r#"{"gates": null, "triggers": null, "checklists": {}}"#).unwrap();
        assert!(none.gates().is_empty() && none.triggers().is_empty());
        // A gate shape from another version is dropped, the checklists kept.
        let odd: Evidence = serde_json::from_str(
            r#"{"gates": [{"id": 3}], "checklists": {"t-30": {"done": [], "open": ["a"]}}}"#,
        )
        .unwrap();
        assert!(odd.gates.is_none());
        assert_eq!(odd.checklists_open().collect::<Vec<_>>(), [("t-30", 1)]);
    }
}
