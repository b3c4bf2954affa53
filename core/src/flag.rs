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

impl FlagValue {
    /// As JSON, whole numbers as integers: a flag API that takes `100` reads `100`, not
    /// `100.0` (TOML's `100` and `100.0` are one number here).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FlagValue::Bool(b) => serde_json::Value::Bool(*b),
            FlagValue::Text(t) => serde_json::Value::String(t.clone()),
            FlagValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                serde_json::Value::from(*n as i64)
            }
            FlagValue::Number(n) => serde_json::json!(n),
        }
    }
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
