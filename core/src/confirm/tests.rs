//! The fleet's arithmetic: confirmations counted once, never undone by an older report, a
//! silent instance never counted as applied, and each kill event told once.

use proptest::prelude::*;

use super::*;

const S: Millis = SECOND;

fn settings() -> ConfirmSettings {
    ConfirmSettings {
        within: Span(30 * S),
        expect_seen: Span(60 * S),
        ..ConfirmSettings::default()
    }
}

#[test]
fn twelve_instances_one_stopped_then_caught_up() {
    let mut fleet = Fleet::new(41, 0, false);
    for i in 0..12 {
        fleet.report(&format!("web-{i}"), 41, 10 * S);
    }
    // web-7 stops polling; the kill is version 42 at 20 s.
    fleet.retarget(42, 20 * S, true);
    for i in (0..12).filter(|i| *i != 7) {
        assert_eq!(
            fleet.report(&format!("web-{i}"), 42, 20 * S + 300 + i),
            Some(20 * S + 300 + i)
        );
    }
    let s = fleet.summary(&settings());
    assert_eq!((s.applied, s.expected), (11, 12));
    assert!(!s.complete());
    assert_eq!(s.lagging[0].instance, "web-7");
    assert_eq!(
        s.words(58 * S),
        "kill applied by 11 of 12 instances, web-7 still on version 41 for 38s (silent 48s)"
    );
    // Not yet due at 49 s; due once at 50 s; not again.
    assert_eq!(fleet.due(&settings(), 49 * S), None);
    assert!(matches!(fleet.due(&settings(), 50 * S), Some(Due::Unconfirmed(s)) if s.applied == 11));
    assert_eq!(fleet.due(&settings(), 51 * S), None);
    // It comes back on an older answer (heard, not confirmed), then holds the kill.
    assert_eq!(fleet.report("web-7", 41, 70 * S), None);
    assert_eq!(fleet.report("web-7", 43, 71 * S), Some(71 * S));
    let s = fleet.summary(&settings());
    assert!(s.complete());
    assert_eq!((s.first, s.last), (Some(20 * S + 300), Some(71 * S)));
    assert!(matches!(
        fleet.due(&settings(), 72 * S),
        Some(Due::Confirmed(_))
    ));
    assert_eq!(fleet.due(&settings(), 90 * S), None);
    assert!(
        s.words(72 * S)
            .ends_with("(first after 300ms, last after 51s)"),
        "{}",
        s.words(72 * S)
    );
}

#[test]
fn an_instance_silent_long_before_the_change_is_not_expected() {
    let mut fleet = Fleet::new(1, 0, false);
    fleet.report("old", 1, 0);
    fleet.report("live", 1, 100 * S);
    fleet.retarget(2, 100 * S, true);
    let s = fleet.summary(&settings());
    assert_eq!(
        s.expected, 1,
        "old was last heard 100 s before, past the 60 s horizon"
    );
    fleet.report("live", 2, 101 * S);
    assert!(fleet.summary(&settings()).complete());
    // A fleet nobody reads from has nothing to confirm, and no event is due.
    let mut empty = Fleet::new(5, 0, true);
    assert!(empty.summary(&settings()).complete());
    assert_eq!(empty.due(&settings(), 100 * S), None);
}

#[test]
fn instance_names_are_bounded_and_printable() {
    assert!(valid_instance("web-7.eu-west-1:8080"));
    assert!(!valid_instance(""));
    assert!(!valid_instance("a b"));
    assert!(!valid_instance("<script>"));
    assert!(!valid_instance(&"a".repeat(MAX_INSTANCE + 1)));
}

#[test]
fn members_are_capped_forgetting_the_longest_silent() {
    let mut fleet = Fleet::new(1, 0, false);
    for i in 0..MAX_MEMBERS as i64 + 10 {
        fleet.report(&format!("i{i}"), 1, i);
    }
    assert_eq!(fleet.members.len(), MAX_MEMBERS);
    assert!(!fleet.members.contains_key("i0"));
    assert!(fleet.members.contains_key(&format!("i{}", MAX_MEMBERS + 9)));
}

/// A flood of new names cannot push out the instance still lagging on a kill: room is made
/// only from instances that hold it, and with none, newcomers are not counted.
#[test]
fn a_flood_of_names_cannot_hide_a_lagging_instance() {
    let mut fleet = Fleet::new(1, 0, false);
    fleet.report("web-7", 1, 0);
    for i in 0..MAX_MEMBERS as i64 - 1 {
        fleet.report(&format!("web-{}", i + 100), 1, 1 + i);
    }
    fleet.retarget(2, 10 * S, true);
    for i in 0..MAX_MEMBERS as i64 - 1 {
        fleet.report(&format!("web-{}", i + 100), 2, 11 * S);
    }
    for i in 0..500 {
        fleet.report(&format!("junk-{i}"), 2, 12 * S);
    }
    let s = fleet.summary(&settings());
    assert!(!s.complete(), "{} of {}", s.applied, s.expected);
    assert_eq!(s.lagging[0].instance, "web-7");
    assert_eq!(fleet.members.len(), MAX_MEMBERS);
}

#[derive(Debug, Clone)]
enum Step {
    Report { who: u8, version: u64, dt: Millis },
    Change { dt: Millis, killed: bool },
    Tick { dt: Millis },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..6, 0u64..8, 0i64..20_000).prop_map(|(who, version, dt)| Step::Report { who, version, dt }),
        1 => (0i64..20_000, any::<bool>()).prop_map(|(dt, killed)| Step::Change { dt, killed }),
        2 => (0i64..40_000).prop_map(|dt| Step::Tick { dt }),
    ]
}

proptest! {
    /// Whatever the order of reports, changes and ticks: applied counts exactly the instances
    /// heard holding the target or later since it was set, never more than expected; an
    /// instance's version never goes back; and a kill's two events come at most once each, the
    /// completion only after the lack.
    #[test]
    fn any_interleaving_keeps_the_count_true(steps in prop::collection::vec(step(), 1..80)) {
        let settings = settings();
        let mut fleet = Fleet::new(0, 0, false);
        let mut now: Millis = 0;
        let mut version = 0u64;
        let mut held: BTreeMap<u8, u64> = BTreeMap::new();
        let mut heard_since: BTreeMap<u8, bool> = BTreeMap::new();
        let mut told = Vec::new();
        for step in steps {
            match step {
                Step::Report { who, version: v, dt } => {
                    now += dt;
                    let v = v.min(version + 1);
                    fleet.report(&format!("w{who}"), v, now);
                    let h = held.entry(who).or_insert(0);
                    *h = (*h).max(v);
                    if v >= version {
                        heard_since.insert(who, true);
                    }
                }
                Step::Change { dt, killed } => {
                    now += dt;
                    version += 1;
                    fleet.retarget(version, now, killed);
                    heard_since = held.iter().filter(|(_, h)| **h >= version).map(|(w, _)| (*w, true)).collect();
                    told.clear();
                }
                Step::Tick { dt } => {
                    now += dt;
                    if let Some(d) = fleet.due(&settings, now) {
                        told.push(matches!(d, Due::Confirmed(_)));
                    }
                }
            }
            let s = fleet.summary(&settings);
            prop_assert_eq!(s.applied, heard_since.len());
            prop_assert!(s.applied <= s.expected);
            for (w, h) in &held {
                prop_assert_eq!(fleet.members[&format!("w{w}")].version, *h);
            }
            prop_assert!(told.len() <= 2);
            if let Some(first) = told.first() {
                prop_assert!(!first, "a completion before any lack was told");
            }
        }
    }
}
