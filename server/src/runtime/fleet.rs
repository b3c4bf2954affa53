//! What a rollout publishes, and how far its fleet has applied it.
//!
//! Flag readers (`/flags`, OFREP) read the published copy, never the action lock: a kill in
//! the middle of its commit does not hold up ten thousand instances polling, and they see it
//! the moment it is committed. Each reader that names itself (`X-Cutover-Instance`) and says
//! what it holds is counted by `cutover_core::confirm::Fleet`; the evaluator tells people when
//! a kill goes unconfirmed (and when it is confirmed after all), and saves when each instance
//! confirmed it, for the kill's record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cutover_core::actuate::Desired;
use cutover_core::audit::Confirmed;
use cutover_core::confirm::{ConfirmSettings, Confirmation, Due, Fleet, Heard, MAX_MEMBERS};
use cutover_core::plan::Plan;
use cutover_core::rollout::{Phase, RolloutState};
use cutover_core::time::{HOUR, Millis};

use crate::clock::lock;

/// The state as last committed, and what it asks of the world.
pub struct Published {
    pub state: RolloutState,
    pub desired: Desired,
    /// The version at which `desired` last changed (a checklist tick changes the version,
    /// not what services must do).
    pub changed: u64,
}

/// Confirmations not yet written, at most this many (a flood of instances waits its turn by
/// being dropped from the record, never from the count).
const UNSAVED_LIMIT: usize = 10_000;

pub struct Watch {
    published: Mutex<Arc<Published>>,
    fleet: Mutex<Fleet>,
    /// Kill confirmations to save: (the kill's time, the confirmation).
    unsaved: Mutex<Vec<(Millis, Confirmed)>>,
    /// `Fleet::changes` when viewers were last sent a state.
    shown: AtomicU64,
    settings: ConfirmSettings,
    /// What this replica heard and has not yet told the others, by instance.
    outgoing: Mutex<HashMap<String, Heard>>,
    /// The version and sighting last told the others, by instance: a poller heard every
    /// second is retold every `RETELL`, not every time.
    told: Mutex<HashMap<String, (u64, Millis)>>,
    /// When the other replicas' word was last read.
    pulled: AtomicU64,
}

/// How often an unchanged instance's sighting is told to the other replicas.
const RETELL: Millis = 10 * cutover_core::time::SECOND;

impl Watch {
    pub fn new(plan: &Plan, state: &RolloutState, at: Millis) -> Watch {
        let desired = Desired::of(plan, state);
        let mut fleet = Fleet::new(state.version, change_time(state, at), desired.killed);
        fleet.label(label(&desired));
        Watch {
            published: Mutex::new(Arc::new(Published {
                state: state.clone(),
                changed: state.version,
                desired,
            })),
            fleet: Mutex::new(fleet),
            unsaved: Mutex::new(Vec::new()),
            shown: AtomicU64::new(0),
            settings: plan.confirm.clone(),
            outgoing: Mutex::new(HashMap::new()),
            told: Mutex::new(HashMap::new()),
            pulled: AtomicU64::new(0),
        }
    }

    /// The newest committed state, for readers that must not wait on an action.
    pub fn published(&self) -> Arc<Published> {
        lock(&self.published).clone()
    }

    /// A newly committed state: published at once; a change in what services must do is a
    /// new target for the fleet to confirm.
    pub fn publish(&self, plan: &Plan, state: &RolloutState, at: Millis) -> Desired {
        let desired = Desired::of(plan, state);
        let mut published = lock(&self.published);
        if state.version < published.state.version {
            return desired;
        }
        let same = Desired {
            version: desired.version,
            ..published.desired.clone()
        } == desired;
        let changed = if same {
            published.changed
        } else {
            lock(&self.fleet).retarget_as(
                state.version,
                change_time(state, at),
                desired.killed,
                label(&desired),
            );
            state.version
        };
        *published = Arc::new(Published {
            state: state.clone(),
            desired: desired.clone(),
            changed,
        });
        desired
    }

    /// `instance` holds `version` now.
    pub fn heard(&self, instance: &str, version: u64, at: Millis) {
        let mut fleet = lock(&self.fleet);
        let confirmed = fleet.report(instance, version, at);
        let now_known = fleet.heard(instance);
        let kill = fleet.kill_since();
        drop(fleet);
        if let Some(h) = now_known {
            let mut told = lock(&self.told);
            let fresh = told
                .get(instance)
                .is_none_or(|(v, seen)| *v != h.version || h.seen - *seen >= RETELL);
            if fresh {
                if told.len() >= 2 * MAX_MEMBERS {
                    told.clear();
                }
                told.insert(instance.to_string(), (h.version, h.seen));
                drop(told);
                let mut outgoing = lock(&self.outgoing);
                if outgoing.len() < MAX_MEMBERS || outgoing.contains_key(instance) {
                    outgoing.insert(instance.to_string(), h);
                }
            }
        }
        // A confirmation of a kill is kept for its record (no summary on this hot path: a
        // crowd of pollers confirming must not each walk the whole fleet).
        let (Some(when), Some(kill_at)) = (confirmed, kill) else {
            return;
        };
        let mut unsaved = lock(&self.unsaved);
        if unsaved.len() < UNSAVED_LIMIT {
            unsaved.push((
                kill_at,
                Confirmed {
                    instance: instance.to_string(),
                    version,
                    at: when,
                },
            ));
        }
    }

    /// How far the fleet is, when there is a fleet to speak of (or a kill to confirm).
    pub fn confirmation(&self) -> Option<Confirmation> {
        let summary = lock(&self.fleet).summary(&self.settings);
        (summary.expected > 0 || summary.killed).then_some(summary)
    }

    /// The kill event due now, if any (the leader asks every second).
    pub fn due(&self, at: Millis) -> Option<Due> {
        let mut fleet = lock(&self.fleet);
        // Instances silent for an hour and more are forgotten, unless the target still
        // expects them (they stay "still on version N" until heard from).
        let horizon = fleet.summary(&self.settings).since - self.settings.expect_seen.0;
        fleet.forget_older_than(horizon.min(at - HOUR));
        fleet.due(&self.settings, at)
    }

    /// Whether viewers have not yet seen the fleet as it is (checked once a second).
    pub fn take_changed(&self) -> bool {
        let changes = lock(&self.fleet).changes;
        self.shown.swap(changes, Ordering::Relaxed) != changes
    }

    /// The plan metric (by position) whose samples are applied versions, and the label
    /// naming the instance.
    pub fn metric(&self, plan: &Plan) -> Option<(usize, &str)> {
        let id = self.settings.metric.as_deref()?;
        let index = plan.metrics.iter().position(|m| m.id == id)?;
        Some((index, self.settings.instance_label.as_str()))
    }

    /// A sample of the confirm metric: `instance` says it applied `value` (a version).
    pub fn heard_metric(&self, instance: &str, value: f64, at: Millis) {
        let published = lock(&self.published).state.version;
        // A version is a whole number no newer than what is published.
        if value.is_finite()
            && value >= 0.0
            && value.fract() == 0.0
            && (value as u64) <= published
            && cutover_core::confirm::valid_instance(instance)
        {
            self.heard(instance, value as u64, at);
        }
    }

    /// What this replica heard since it last told the others, taken.
    pub fn take_outgoing(&self) -> Vec<Heard> {
        lock(&self.outgoing).drain().map(|(_, h)| h).collect()
    }

    /// Takes what the other replicas heard (their newest word on each instance).
    pub fn merge(&self, heard: &[Heard]) {
        let mut fleet = lock(&self.fleet);
        for h in heard {
            fleet.merge(h);
        }
    }

    /// When the other replicas' word was last read (0: never), and marks `at` as the next.
    pub fn pulled(&self, at: Millis) -> Millis {
        self.pulled
            .swap(u64::try_from(at).unwrap_or(0), Ordering::Relaxed)
            .try_into()
            .unwrap_or(0)
    }

    /// The confirmations to save, taken.
    pub fn take_unsaved(&self) -> Vec<(Millis, Confirmed)> {
        std::mem::take(&mut *lock(&self.unsaved))
    }

    /// Puts back confirmations a failed save could not keep.
    pub fn restore_unsaved(&self, mut back: Vec<(Millis, Confirmed)>) {
        let mut unsaved = lock(&self.unsaved);
        back.append(&mut unsaved);
        back.truncate(UNSAVED_LIMIT);
        *unsaved = back;
    }
}

/// What a published state is, in words: "canary (10%)", "not started".
fn label(desired: &Desired) -> String {
    match &desired.stage {
        _ if desired.killed => "kill".to_string(),
        Some(stage) => format!("{stage} ({}%)", desired.traffic),
        None => "not started".to_string(),
    }
}

/// When a state's change was made: a kill's own time (its record's), else `at`.
fn change_time(state: &RolloutState, at: Millis) -> Millis {
    match (&state.phase, &state.killed) {
        (Phase::Killed, Some(mark)) => mark.at,
        _ => at,
    }
}
