//! A value a stage applies to the world: a leaf the plan and the expression language share.

use serde::{Deserialize, Serialize};

/// A flag or value applied to the world at a stage (`ORCHESTRATOR = "spiralogic"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlagValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl std::fmt::Display for FlagValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlagValue::Bool(b) => write!(f, "{b}"),
            FlagValue::Number(n) => write!(f, "{n}"),
            FlagValue::Text(t) => f.write_str(t),
        }
    }
}
