//! What a rollout's state asks of the world, and how far the world has got: the same desired
//! state is served at `GET .../flags`, posted to webhooks and written to env files, so every
//! consumer sees one truth. Not started, no stage flags apply: services fall back to their
//! defaults. Killed, the plan's rollback flags apply (`[rollback]`, with the killed stage's
//! own over them): the known state the runbook returns to, not merely "everything off".

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::plan::{FlagValue, Plan};
use crate::rollout::{Phase, RolloutState};
use crate::time::Millis;

pub mod call;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub rollout: String,
    /// The state version this describes: consumers can ignore anything older.
    pub version: u64,
    pub phase: Phase,
    pub stage: Option<String>,
    pub traffic: f64,
    pub killed: bool,
    pub flags: BTreeMap<String, FlagValue>,
}

impl Desired {
    pub fn of(plan: &Plan, state: &RolloutState) -> Desired {
        let stage = state.stage.and_then(|i| plan.stages.get(i));
        let live = matches!(
            state.phase,
            Phase::Running | Phase::Paused | Phase::Hypercare | Phase::Completed
        );
        Desired {
            rollout: plan.id.clone(),
            version: state.version,
            phase: state.phase,
            stage: stage.map(|s| s.id.clone()),
            traffic: state.traffic(plan),
            killed: state.phase == Phase::Killed,
            flags: if state.phase == Phase::Killed {
                plan.rollback_flags(state.stage)
            } else {
                let mut flags = stage
                    .filter(|_| live)
                    .map(|s| s.flags.clone())
                    .unwrap_or_default();
                if live && stage.is_some() {
                    flags.extend(
                        state
                            .adjusted
                            .iter()
                            .map(|(k, a)| (k.clone(), a.value.clone())),
                    );
                }
                flags
            },
        }
    }

    /// `KEY=value` lines: the stage's flags, then `CUTOVER_*` facts. Values with spaces,
    /// quotes or `#` are double-quoted, as shells and dotenv loaders read them.
    pub fn env_file(&self) -> String {
        let mut out = format!(
            "# written by cutover for rollout {} at version {}; do not edit\n",
            self.rollout, self.version
        );
        for (key, value) in &self.flags {
            let _ = writeln!(out, "{key}={}", env_value(&value.to_string()));
        }
        let stage = self.stage.clone().unwrap_or_default();
        let _ = writeln!(out, "CUTOVER_ROLLOUT={}", env_value(&self.rollout));
        let _ = writeln!(out, "CUTOVER_PHASE={}", env_value(&self.phase.to_string()));
        let _ = writeln!(out, "CUTOVER_STAGE={}", env_value(&stage));
        let _ = writeln!(out, "CUTOVER_TRAFFIC={}", self.traffic);
        let _ = writeln!(out, "CUTOVER_KILLED={}", self.killed);
        let _ = writeln!(out, "CUTOVER_VERSION={}", self.version);
        out
    }
}

/// Where a published flag's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "stage")]
pub enum FlagSource {
    /// The current stage set it (to a value the stage before did not have).
    Stage(String),
    /// Unchanged since this earlier stage set it (carried, or set again to the same value).
    Since(String),
    /// The plan's `[rollback]` flags, after a kill.
    Rollback,
    /// The killed stage's own `rollback_flags`, over the plan's.
    StageRollback(String),
    /// Set within the stage (`adjust`) by this person.
    Adjusted(String),
}

impl FlagSource {
    /// As a person reads it beside the flag.
    pub fn words(&self) -> String {
        match self {
            FlagSource::Stage(s) => format!("set by {s}"),
            FlagSource::Since(s) => format!("since {s}"),
            FlagSource::Rollback => "rollback".into(),
            FlagSource::StageRollback(s) => format!("rollback of {s}"),
            FlagSource::Adjusted(by) => format!("adjusted by {by}"),
        }
    }
}

/// One published flag, its value and where that comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InForce {
    pub key: String,
    pub value: FlagValue,
    pub source: FlagSource,
}

/// The flags published now (what `/flags` serves), each with where its value comes from:
/// the page, the wall and `cutover status` show them.
pub fn in_force(plan: &Plan, state: &RolloutState) -> Vec<InForce> {
    let desired = Desired::of(plan, state);
    desired
        .flags
        .iter()
        .map(|(key, value)| {
            let source = if let Some(a) = state.adjusted.get(key).filter(|_| !desired.killed) {
                FlagSource::Adjusted(a.by.by.name.clone())
            } else if desired.killed {
                let own = state
                    .stage
                    .and_then(|i| plan.stages.get(i))
                    .filter(|s| s.rollback_flags.get(key) == Some(value));
                match own {
                    Some(s) => FlagSource::StageRollback(s.id.clone()),
                    None => FlagSource::Rollback,
                }
            } else {
                // The earliest stage of the unbroken run up to this one with this value.
                let current = state.stage.unwrap_or(0);
                let mut first = current;
                while first > 0
                    && plan.stages.get(first - 1).and_then(|s| s.flags.get(key)) == Some(value)
                {
                    first -= 1;
                }
                let id = plan
                    .stages
                    .get(first)
                    .map_or(String::new(), |s| s.id.clone());
                if first == current {
                    FlagSource::Stage(id)
                } else {
                    FlagSource::Since(id)
                }
            };
            InForce {
                key: key.clone(),
                value: value.clone(),
                source,
            }
        })
        .collect()
}

fn env_value(v: &str) -> String {
    let plain = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.,:/@%+".contains(c));
    if plain {
        v.to_string()
    } else {
        format!(
            "\"{}\"",
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        )
    }
}

/// Where an actuator is with the newest state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyState {
    /// Sending the newest state now.
    Applying,
    /// The newest state was acknowledged.
    Applied,
    /// The last attempt failed; it is retried with backoff until acknowledged.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActuatorStatus {
    pub id: String,
    /// `webhook` or `env_file`.
    pub kind: String,
    pub state: ApplyState,
    /// The state version being applied (or applied).
    pub version: u64,
    /// Attempts for this version so far.
    pub attempts: u32,
    pub error: Option<String>,
    pub at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        crate::plan::parse(
            "p.toml",
            r#"
[rollout]
id = "mirror"
title = "Mirror"

[[stage]]
id = "shadow"
traffic = 0
shadow = true
flags = { MIRROR_ENABLED = false, MIRROR_SHADOW = true }

[[stage]]
id = "live"
traffic = 100
flags = { MIRROR_ENABLED = true, MIRROR_SHADOW = false, NOTE = "go live" }

[[metric]]
id = "reads"
kind = "counter"
"#,
        )
        .unwrap()
    }

    #[test]
    fn env_file_holds_the_stage_flags_and_the_facts() {
        let plan = plan();
        let mut state = RolloutState::new();
        state.phase = Phase::Running;
        state.stage = Some(1);
        state.version = 4;
        let text = Desired::of(&plan, &state).env_file();
        assert_eq!(
            text,
            "# written by cutover for rollout mirror at version 4; do not edit\n\
             MIRROR_ENABLED=true\nMIRROR_SHADOW=false\nNOTE=\"go live\"\n\
             CUTOVER_ROLLOUT=mirror\nCUTOVER_PHASE=running\nCUTOVER_STAGE=live\n\
             CUTOVER_TRAFFIC=100\nCUTOVER_KILLED=false\nCUTOVER_VERSION=4\n"
        );
    }

    #[test]
    fn flags_in_force_say_where_they_come_from() {
        let text = "[rollout]\nid = \"m\"\ntitle = \"M\"\ninherit_flags = true\n\
             [rollback]\nflags = { NEW_PATH = false, MODE = \"classic\" }\n\
             [[stage]]\nid = \"canary\"\ntraffic = 10\nflags = { NEW_PATH = true, MODE = \"lite\" }\n\
             [[stage]]\nid = \"half\"\ntraffic = 50\nflags = { MODE = \"full\" }\n\
             rollback_flags = { MODE = \"safe\" }\n\
             [[metric]]\nid = \"reads\"\nkind = \"counter\"\n";
        let plan = crate::plan::parse("m.toml", text).unwrap();
        let mut state = RolloutState::new();
        state.phase = Phase::Running;
        state.stage = Some(1);
        let words = |state: &RolloutState| {
            in_force(&plan, state)
                .into_iter()
                .map(|f| format!("{}={} {}", f.key, f.value, f.source.words()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            words(&state),
            ["MODE=full set by half", "NEW_PATH=true since canary"]
        );
        state.phase = Phase::Killed;
        assert_eq!(
            words(&state),
            ["MODE=safe rollback of half", "NEW_PATH=false rollback"]
        );
        // Not started: nothing is published.
        assert!(in_force(&plan, &RolloutState::new()).is_empty());
    }

    #[test]
    fn a_killed_rollout_asks_for_no_stage_flags_and_no_traffic() {
        let plan = plan();
        let mut state = RolloutState::new();
        state.phase = Phase::Killed;
        state.stage = Some(1);
        let desired = Desired::of(&plan, &state);
        assert!(desired.killed);
        assert_eq!(desired.traffic, 0.0);
        assert!(desired.flags.is_empty());
        assert!(desired.env_file().contains("CUTOVER_KILLED=true\n"));
    }

    /// A plan that says what a kill publishes gets exactly that (the killed stage's own
    /// rollback flags over the plan's), not "every flag off".
    #[test]
    fn a_kill_publishes_the_plans_rollback_flags() {
        let text = "[rollout]\nid = \"m\"\ntitle = \"M\"\n\
             [rollback]\nflags = { MIRROR_ENABLED = false, MIRROR_SHADOW = true }\n\
             [[stage]]\nid = \"canary\"\ntraffic = 10\nflags = { MIRROR_ENABLED = true }\n\
             [[stage]]\nid = \"live\"\ntraffic = 100\nflags = { MIRROR_ENABLED = true }\n\
             rollback_flags = { READONLY = true }\n\
             [[metric]]\nid = \"reads\"\nkind = \"counter\"\n";
        let plan = crate::plan::parse("m.toml", text).unwrap();
        let mut state = RolloutState::new();
        state.phase = Phase::Killed;
        state.stage = Some(0);
        let flags = |state: &RolloutState| {
            Desired::of(&plan, state)
                .flags
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            flags(&state),
            ["MIRROR_ENABLED=false", "MIRROR_SHADOW=true"]
        );
        state.stage = Some(1);
        assert_eq!(
            flags(&state),
            [
                "MIRROR_ENABLED=false",
                "MIRROR_SHADOW=true",
                "READONLY=true"
            ]
        );
        assert_eq!(Desired::of(&plan, &state).traffic, 0.0);
        // Running again, the stage's own flags apply.
        state.phase = Phase::Running;
        assert_eq!(flags(&state), ["MIRROR_ENABLED=true"]);
    }
}
