//! Which users a stage's traffic share reaches, and what a flag evaluates to for one of them:
//! what OpenFeature clients are served (`/ofrep/v1/...`).
//!
//! A user's place is a stable hash of the rollout and the targeting key, a number in
//! `[0, 100)` with a ten-thousandth of a point's grain; the user is in while the share is
//! above it. So a user in at 5 % is in at 25 % and at 100 %, and out again only when the
//! share goes down (a step back) or the rollout is killed. Hashing with the rollout's id
//! makes two rollouts' 5 % different people.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::actuate::Desired;
use crate::flag::FlagValue;
use crate::plan::Plan;
use crate::rollout::{Phase, RolloutState};

/// Places per percentage point.
const GRAIN: u64 = 10_000;

/// Where a user stands in a rollout's traffic, in `0..100 * GRAIN`.
pub fn place(rollout: &str, targeting_key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(rollout.as_bytes());
    h.update([0]);
    h.update(targeting_key.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % (100 * GRAIN)
}

/// Whether a user at `place` is inside a `traffic` percent share.
pub fn within(place: u64, traffic: f64) -> bool {
    if !traffic.is_finite() || traffic <= 0.0 {
        return false;
    }
    let share = (traffic.min(100.0) * GRAIN as f64).round() as u64;
    place < share
}

/// Why an evaluation came out as it did, in OpenFeature's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The user is inside the stage's share: the stage's value.
    TargetingMatch,
    /// The same value for everyone (a shadow stage changes no user's path).
    Static,
    /// Outside the share, or the rollout has not started: the value to return to.
    Default,
    /// The rollout is killed: the rollback value for everyone.
    Disabled,
}

/// One flag's value for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub key: String,
    /// `None`: the plan knows no value to return to; the client keeps its own default.
    pub value: Option<FlagValue>,
    pub reason: Reason,
    /// The stage's id inside the share; `baseline` outside it; `rollback` after a kill.
    pub variant: String,
}

/// Why a flag could not be evaluated (OpenFeature's error codes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvaluationError {
    #[error("rollout {rollout} has no flag \"{key}\"")]
    FlagNotFound { rollout: String, key: String },
    #[error("the stage serves {traffic}% of users: a targetingKey says which user this is")]
    TargetingKeyMissing { traffic: f64 },
}

impl EvaluationError {
    pub fn code(&self) -> &'static str {
        match self {
            EvaluationError::FlagNotFound { .. } => "FLAG_NOT_FOUND",
            EvaluationError::TargetingKeyMissing { .. } => "TARGETING_KEY_MISSING",
        }
    }
}

/// Every flag a plan can set: any stage's, and the rollback ones.
pub fn flag_keys(plan: &Plan) -> BTreeSet<&str> {
    plan.stages
        .iter()
        .flat_map(|s| s.flags.keys().chain(s.rollback_flags.keys()))
        .chain(plan.rollback_flags.keys())
        .chain(plan.adjust.iter().map(|a| &a.flag))
        .map(String::as_str)
        .collect()
}

/// What `key` is for the user with `targeting_key` in the rollout's state now.
pub fn evaluate(
    plan: &Plan,
    state: &RolloutState,
    key: &str,
    targeting_key: Option<&str>,
) -> Result<Evaluation, EvaluationError> {
    if !flag_keys(plan).contains(key) {
        return Err(EvaluationError::FlagNotFound {
            rollout: plan.id.clone(),
            key: key.to_string(),
        });
    }
    let out = |value: Option<&FlagValue>, reason: Reason, variant: &str| Evaluation {
        key: key.to_string(),
        value: value.cloned(),
        reason,
        variant: variant.to_string(),
    };
    let baseline = plan.rollback_flags(state.stage);
    let desired = Desired::of(plan, state);
    if state.phase == Phase::Killed {
        return Ok(out(desired.flags.get(key), Reason::Disabled, "rollback"));
    }
    let stage = state.stage.and_then(|i| plan.stages.get(i));
    let (Some(stage), Some(value)) = (stage, desired.flags.get(key)) else {
        return Ok(out(baseline.get(key), Reason::Default, "baseline"));
    };
    if stage.shadow {
        return Ok(out(Some(value), Reason::Static, &stage.id));
    }
    let traffic = desired.traffic;
    let inside = if traffic >= 100.0 {
        true
    } else if traffic <= 0.0 {
        false
    } else {
        let user = targeting_key
            .filter(|k| !k.is_empty())
            .ok_or(EvaluationError::TargetingKeyMissing { traffic })?;
        within(place(&plan.id, user), traffic)
    };
    Ok(if inside {
        out(Some(value), Reason::TargetingMatch, &stage.id)
    } else {
        out(baseline.get(key), Reason::Default, "baseline")
    })
}

#[cfg(test)]
mod tests;
