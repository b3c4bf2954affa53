//! The rollout state machine: which actions are allowed in which state, by whom, and what they
//! change. Every accepted action yields exactly one audit record; every refused one a typed
//! reason a UI can show as it is ("gate p95-latency has held 41m of 60m").
//!
//! Gate verdicts come in as `Readiness` (computed elsewhere from metric windows), so this
//! module stays a pure function of plan, state, request and time.

mod action;
mod apply;
mod auto;
mod blockers;
mod reconcile;
mod state;
mod timebox;

pub use action::*;
pub use apply::{MANUAL_ONLY, apply};
pub use auto::{AUTO_ACTOR, auto_progress, auto_progress_note};
pub use blockers::{close_blockers, progress_blockers};
pub use reconcile::{ReconcileError, Reconciled, reconcile};
pub use state::*;
pub use timebox::{Overrun, overrun};

#[cfg(test)]
use crate::flag::FlagValue;
#[cfg(test)]
use crate::plan::Plan;
#[cfg(test)]
use crate::role::Role;
#[cfg(test)]
use crate::time::{Millis, Span};

#[cfg(test)]
mod tests;
