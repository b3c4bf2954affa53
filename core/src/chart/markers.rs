//! What an audit record marks on every chart's time axis.

use serde::{Deserialize, Serialize};

/// A labelled moment on every chart's time axis: a stage change, a kill, an override, an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub at: crate::time::Millis,
    pub label: String,
    /// Kills (by a person or a trigger) are drawn as alarms.
    pub alarm: bool,
    /// The audit entry behind it, when known: the page opens its record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// The actions whose audit records put no marker on the charts ([`marker`]), by name: the
/// server leaves them out when asked for markers only.
pub const UNMARKED_ACTIONS: [&str; 4] = ["check", "uncheck", "approve", "schedule"];

/// The marker an audit record puts on the charts, if it is one that changes what the charts
/// mean or calls attention to them (checks and approvals do neither).
pub fn marker(record: &crate::rollout::AuditRecord) -> Option<Marker> {
    use crate::rollout::Action;
    let stage = || record.after.stage.clone().unwrap_or_default();
    let label = match &record.action {
        Action::Start => format!("start {}", stage()),
        Action::Progress if record.after.phase == crate::rollout::Phase::Completed => {
            "completed".to_string()
        }
        Action::Progress if record.after.phase == crate::rollout::Phase::Hypercare => {
            "hypercare".to_string()
        }
        Action::Progress => format!("to {}", stage()),
        Action::AutoProgress { .. } => format!("to {} (automatic)", stage()),
        Action::Close => "closed".to_string(),
        Action::Pause => "pause".to_string(),
        Action::Resume => "resume".to_string(),
        Action::Kill if record.actor.role == crate::role::Role::System => {
            format!("kill by {}", record.actor.name)
        }
        Action::Kill => "kill".to_string(),
        Action::StepBack if record.actor.role == crate::role::Role::System => {
            format!("back to {} by {}", stage(), record.actor.name)
        }
        Action::StepBack => format!("back to {}", stage()),
        Action::Override { gate } => format!("override {gate}"),
        Action::Alert { trigger } => format!("alert {trigger}"),
        Action::PlanChanged => "plan changed".to_string(),
        Action::Timebox { stage } => format!("{stage} past its timebox"),
        Action::Decide { decision } => format!("decided: {}", decision.as_str()),
        Action::Ack { alert, .. } => format!("ack {alert}"),
        Action::Adjust { flag, value } => format!("{flag} = {value}"),
        Action::Check { .. }
        | Action::Uncheck { .. }
        | Action::Approve
        | Action::Schedule { .. } => {
            return None;
        }
    };
    Some(Marker {
        seq: None,
        at: record.at,
        label,
        alarm: matches!(
            record.action,
            Action::Kill
                | Action::StepBack
                | Action::Alert { .. }
                | Action::PlanChanged
                | Action::Timebox { .. }
        ),
    })
}
