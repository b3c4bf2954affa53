//! Whether the world took the newest state. Services that read flags (`/flags`, OFREP) name
//! themselves (`X-Cutover-Instance`) and say which state version they hold (the ETag they
//! send back, or `X-Cutover-Applied`); the fleet is every instance heard from. Each change of
//! what is published (a kill, a stage, an adjustment) is a target: it is confirmed by an
//! instance once that instance holds its version or a later one, and complete once every
//! instance that was alive around the change has. A kill that is not complete within the
//! plan's `[confirm] within` is an event; its completion is another.
//!
//! An instance that goes silent is never counted as having applied anything: it stays
//! "still on version 41" until it is heard from or a newer change replaces the target.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::time::{Millis, SECOND, Span};

/// The longest instance name kept (longer ones are refused).
pub const MAX_INSTANCE: usize = 128;
/// Instances remembered per rollout; past it the longest silent is forgotten.
pub const MAX_MEMBERS: usize = 4_096;
/// Lagging instances named in a summary (the rest are counted).
pub const NAMED: usize = 8;

/// A plan's `[confirm]`: how long a kill may go unconfirmed before people are told, how long
/// before a change an instance must have been heard from to be expected to apply it, and the
/// plan metric (if any) by which services report the version they applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmSettings {
    pub within: Span,
    pub expect_seen: Span,
    /// A plan metric whose samples are a service's applied version, with the instance in
    /// `instance_label` (`applied_version{instance="web-7"} 42`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default = "instance_label")]
    pub instance_label: String,
}

fn instance_label() -> String {
    "instance".to_string()
}

impl Default for ConfirmSettings {
    fn default() -> Self {
        ConfirmSettings {
            within: Span(60 * SECOND),
            expect_seen: Span(10 * crate::time::MINUTE),
            metric: None,
            instance_label: instance_label(),
        }
    }
}

/// Whether `name` may name an instance: 1 to [`MAX_INSTANCE`] bytes of letters, digits and
/// `.-_:/@`, so names print safely on every screen and in every message.
pub fn valid_instance(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INSTANCE
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:/@".contains(&b))
}

#[derive(Debug, Clone, PartialEq)]
struct Member {
    version: u64,
    /// When it was first heard holding `version`.
    since: Millis,
    seen: Millis,
}

/// One instance as another replica heard it, or as this one tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub instance: String,
    pub version: u64,
    /// When it was first heard holding `version`.
    pub since: Millis,
    pub seen: Millis,
}

/// The change being confirmed.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    version: u64,
    label: String,
    since: Millis,
    killed: bool,
    /// Instance -> when it was first heard holding the target (or later).
    confirmed: BTreeMap<String, Millis>,
    /// Whether "not confirmed in time" was told (and then its completion): each once.
    told: Told,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Nothing,
    Unconfirmed,
    Confirmed,
}

/// The instances of one rollout and how far each is.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    members: HashMap<String, Member>,
    target: Target,
    /// Bumped by every report that changes what a summary says.
    pub changes: u64,
}

/// What a summary says, for the page, the wall, `cutover status` and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The version of the change being confirmed.
    pub version: u64,
    /// What changed, in words: "kill", "canary (10%)".
    #[serde(default)]
    pub label: String,
    pub since: Millis,
    pub killed: bool,
    /// Instances holding it (or later).
    pub applied: usize,
    /// Instances expected to: heard from within `expect_seen` before the change, or since.
    pub expected: usize,
    /// Up to [`NAMED`] of those not yet holding it, the oldest version first.
    pub lagging: Vec<Lagging>,
    /// When the first and the last instance confirmed it.
    pub first: Option<Millis>,
    pub last: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagging {
    pub instance: String,
    pub version: u64,
    /// When it was last heard from.
    pub seen: Millis,
}

impl Confirmation {
    /// Every expected instance holds the change (vacuously, when none is known).
    pub fn complete(&self) -> bool {
        self.applied >= self.expected
    }

    /// "kill applied by 11 of 12 instances, web-7 still on version 41 for 38s".
    pub fn words(&self, now: Millis) -> String {
        let what = if self.killed || self.label.is_empty() {
            if self.killed {
                "kill".to_string()
            } else {
                format!("version {}", self.version)
            }
        } else {
            format!("{}, version {},", self.label, self.version)
        };
        let mut out = format!(
            "{what} applied by {} of {} instance{}",
            self.applied,
            self.expected,
            if self.expected == 1 { "" } else { "s" }
        );
        for l in &self.lagging {
            let _ = write!(
                out,
                ", {} still on version {} for {}",
                l.instance,
                l.version,
                Span(now.saturating_sub(self.since).max(0)).human()
            );
            if now - l.seen > 5 * SECOND {
                let _ = write!(
                    out,
                    " (silent {})",
                    Span(now.saturating_sub(l.seen)).human()
                );
            }
        }
        let unnamed = self.expected - self.applied - self.lagging.len().min(self.expected);
        if unnamed > 0 {
            let _ = write!(out, " and {unnamed} more");
        }
        if self.complete()
            && let (Some(first), Some(last)) = (self.first, self.last)
        {
            let _ = write!(
                out,
                " (first after {}, last after {})",
                lag(first.saturating_sub(self.since)),
                lag(last.saturating_sub(self.since))
            );
        }
        out
    }
}

/// A delay as people read it: milliseconds under a second, tenths under ten.
pub fn lag(ms: Millis) -> String {
    let ms = ms.max(0);
    if ms < SECOND {
        format!("{ms}ms")
    } else if ms < 10 * SECOND {
        format!("{:.1}s", ms as f64 / SECOND as f64)
    } else {
        Span(ms).human()
    }
}

impl Fleet {
    /// A fleet confirming the state at `version`, published at `since`.
    pub fn new(version: u64, since: Millis, killed: bool) -> Fleet {
        Fleet {
            members: HashMap::new(),
            target: Target {
                version,
                label: String::new(),
                since,
                killed,
                confirmed: BTreeMap::new(),
                told: Told::Nothing,
            },
            changes: 0,
        }
    }

    /// What is published changed at `version`: confirmations start again from the instances
    /// already holding it (none, usually).
    pub fn retarget(&mut self, version: u64, since: Millis, killed: bool) {
        self.retarget_as(version, since, killed, String::new());
    }

    /// As [`Fleet::retarget`], naming the change for people ("canary (10%)").
    pub fn retarget_as(&mut self, version: u64, since: Millis, killed: bool, label: String) {
        let confirmed = self
            .members
            .iter()
            .filter(|(_, m)| m.version >= version)
            .map(|(k, _)| (k.clone(), since))
            .collect();
        self.target = Target {
            version,
            label,
            since,
            killed,
            confirmed,
            told: Told::Nothing,
        };
        self.changes += 1;
    }

    /// When the kill being confirmed was committed, if the target is a kill.
    pub fn kill_since(&self) -> Option<Millis> {
        self.target.killed.then_some(self.target.since)
    }

    /// The version confirmations are counted against.
    pub fn target(&self) -> u64 {
        self.target.version
    }

    /// Names the change being confirmed ("canary (10%)").
    pub fn label(&mut self, label: String) {
        self.target.label = label;
    }

    /// `instance` holds `version` at `at`. Returns when it confirmed the target, if this
    /// report is its confirmation (for the kill's record).
    pub fn report(&mut self, instance: &str, version: u64, at: Millis) -> Option<Millis> {
        self.merge(&Heard {
            instance: instance.to_string(),
            version,
            since: at,
            seen: at,
        })
    }

    /// What is known of `instance` now, to tell the other replicas.
    pub fn heard(&self, instance: &str) -> Option<Heard> {
        self.members.get(instance).map(|m| Heard {
            instance: instance.to_string(),
            version: m.version,
            since: m.since,
            seen: m.seen,
        })
    }

    /// Takes what a replica heard of an instance (or this one: see [`Fleet::report`]): the
    /// newer version and the later sighting win, so replicas' reports merge in any order.
    pub fn merge(&mut self, h: &Heard) -> Option<Millis> {
        let (instance, version, at) = (h.instance.as_str(), h.version, h.since);
        match self.members.get_mut(instance) {
            Some(m) => {
                // A later report of an older version (a reordered request, a restored
                // cache) is heard, not believed over the newer one.
                if version > m.version {
                    m.version = version;
                    m.since = h.since;
                    self.changes += 1;
                } else if version == m.version && h.since < m.since {
                    m.since = h.since;
                }
                m.seen = m.seen.max(h.seen);
            }
            None => {
                if self.members.len() >= MAX_MEMBERS {
                    // Room is made only from instances that already hold the target: a flood
                    // of new names must never push out the one still lagging on a kill (and
                    // so make the kill look applied). With none to spare, the newcomer waits.
                    let target = &self.target;
                    let spare = self
                        .members
                        .iter()
                        .filter(|(k, _)| target.confirmed.contains_key(*k))
                        .min_by_key(|(_, m)| m.seen)
                        .map(|(k, _)| k.clone());
                    match spare {
                        Some(k) => {
                            self.members.remove(&k);
                        }
                        None => return None,
                    }
                }
                self.members.insert(
                    instance.to_string(),
                    Member {
                        version,
                        since: h.since,
                        seen: h.seen,
                    },
                );
                self.changes += 1;
            }
        }
        if version < self.target.version {
            return None;
        }
        // Confirmed when first heard holding it, but never before the change itself.
        let when = at.max(self.target.since);
        match self.target.confirmed.get_mut(instance) {
            None => {
                self.target.confirmed.insert(instance.to_string(), when);
                self.changes += 1;
                Some(when)
            }
            // Another replica heard it first: the earlier time stands.
            Some(t) if when < *t => {
                *t = when;
                None
            }
            Some(_) => None,
        }
    }

    /// Where the target stands at `now`.
    pub fn summary(&self, settings: &ConfirmSettings) -> Confirmation {
        let t = &self.target;
        let horizon = t.since.saturating_sub(settings.expect_seen.0);
        let mut lagging: Vec<Lagging> = self
            .members
            .iter()
            .filter(|(k, m)| m.seen >= horizon && !t.confirmed.contains_key(*k))
            .map(|(k, m)| Lagging {
                instance: k.clone(),
                version: m.version,
                seen: m.seen,
            })
            .collect();
        let expected = t.confirmed.len() + lagging.len();
        lagging.sort_by(|a, b| (a.version, &a.instance).cmp(&(b.version, &b.instance)));
        lagging.truncate(NAMED);
        Confirmation {
            version: t.version,
            label: t.label.clone(),
            since: t.since,
            killed: t.killed,
            applied: t.confirmed.len(),
            expected,
            lagging,
            first: t.confirmed.values().min().copied(),
            last: t.confirmed.values().max().copied(),
        }
    }

    /// The event due now, if any: a kill not confirmed within `settings.within` (once), and
    /// then its completion (once).
    pub fn due(&mut self, settings: &ConfirmSettings, now: Millis) -> Option<Due> {
        if !self.target.killed {
            return None;
        }
        let summary = self.summary(settings);
        match self.target.told {
            Told::Nothing
                if !summary.complete()
                    && now.saturating_sub(self.target.since) >= settings.within.0 =>
            {
                self.target.told = Told::Unconfirmed;
                Some(Due::Unconfirmed(summary))
            }
            Told::Unconfirmed if summary.complete() => {
                self.target.told = Told::Confirmed;
                Some(Due::Confirmed(summary))
            }
            _ => None,
        }
    }

    /// Forgets instances last heard from before `cutoff`: bounded memory for a fleet that
    /// scales down. One silent since before the target's horizon is no longer expected anyway.
    pub fn forget_older_than(&mut self, cutoff: Millis) {
        let before = self.members.len();
        self.members.retain(|_, m| m.seen >= cutoff);
        if self.members.len() != before {
            self.changes += 1;
        }
    }
}

/// An event the confirmation of a kill calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    Unconfirmed(Confirmation),
    Confirmed(Confirmation),
}

#[cfg(test)]
mod tests;
