use proptest::prelude::*;

use super::*;

fn plan() -> Plan {
    crate::plan::parse(
        "t.toml",
        r#"
[rollout]
id = "search-v2"
title = "Search v2"

[rollback]
flags = { SEARCH_V2 = false }

[[stage]]
id = "shadow"
traffic = 0
shadow = true
flags = { SEARCH_V2 = false, SHADOW_SAMPLE = 0.1 }

[[stage]]
id = "canary"
traffic = 5
flags = { SEARCH_V2 = true }

[[stage]]
id = "quarter"
traffic = 25
flags = { SEARCH_V2 = true }

[[stage]]
id = "all"
traffic = 100
flags = { SEARCH_V2 = true }

[[metric]]
id = "reads"
kind = "counter"
"#,
    )
    .unwrap()
}

fn at(stage: usize, phase: Phase) -> RolloutState {
    let mut s = RolloutState::new();
    s.phase = phase;
    s.stage = Some(stage);
    s
}

fn on(plan: &Plan, state: &RolloutState, user: &str) -> bool {
    evaluate(plan, state, "SEARCH_V2", Some(user))
        .unwrap()
        .value
        == Some(FlagValue::Bool(true))
}

proptest! {
    /// Whoever is in at a share is in at every larger one.
    #[test]
    fn membership_only_grows_with_the_share(user in "[a-z0-9-]{1,40}", a in 0.0f64..100.0, b in 0.0f64..100.0) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let p = place("search-v2", &user);
        prop_assert!(!within(p, low) || within(p, high));
    }
}

/// 10,000 users over 5 → 25 → 100: the share seen is within a point of the stage's, nobody
/// in at 5 is out at 25, and a step back or a kill takes them out again.
#[test]
fn users_stay_in_as_the_share_grows_and_leave_on_a_step_back_or_kill() {
    let plan = plan();
    let users: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
    let share =
        |state: &RolloutState| users.iter().filter(|u| on(&plan, state, u)).count() as f64 / 100.0;
    let canary = at(1, Phase::Running);
    let quarter = at(2, Phase::Running);
    assert!((share(&canary) - 5.0).abs() <= 1.0, "{}", share(&canary));
    assert!((share(&quarter) - 25.0).abs() <= 1.0, "{}", share(&quarter));
    assert_eq!(share(&at(3, Phase::Running)), 100.0);
    for u in &users {
        if on(&plan, &canary, u) {
            assert!(on(&plan, &quarter, u), "{u} fell out at 25%");
        }
    }
    let killed = at(2, Phase::Killed);
    assert_eq!(share(&killed), 0.0);
    let e = evaluate(&plan, &killed, "SEARCH_V2", Some("user-1")).unwrap();
    assert_eq!(
        (e.reason, e.value),
        (Reason::Disabled, Some(FlagValue::Bool(false)))
    );
}

#[test]
fn reasons_and_variants_say_why() {
    let plan = plan();
    let canary = at(1, Phase::Running);
    let inside = (0..1000)
        .map(|i| format!("u{i}"))
        .find(|u| on(&plan, &canary, u))
        .unwrap();
    let e = evaluate(&plan, &canary, "SEARCH_V2", Some(&inside)).unwrap();
    assert_eq!(
        (e.reason, e.variant.as_str()),
        (Reason::TargetingMatch, "canary")
    );
    let outside = (0..1000)
        .map(|i| format!("u{i}"))
        .find(|u| !on(&plan, &canary, u))
        .unwrap();
    let e = evaluate(&plan, &canary, "SEARCH_V2", Some(&outside)).unwrap();
    assert_eq!(
        (e.reason, e.variant.as_str(), e.value),
        (Reason::Default, "baseline", Some(FlagValue::Bool(false)))
    );
    // A shadow stage sets its flags for everyone, with or without a user.
    let e = evaluate(&plan, &at(0, Phase::Running), "SHADOW_SAMPLE", None).unwrap();
    assert_eq!(
        (e.reason, e.value),
        (Reason::Static, Some(FlagValue::Number(0.1)))
    );
    // Not started: the value to return to, or none the plan knows.
    let e = evaluate(&plan, &RolloutState::new(), "SHADOW_SAMPLE", Some("u")).unwrap();
    assert_eq!((e.reason, e.value), (Reason::Default, None));
    assert_eq!(
        evaluate(&plan, &canary, "SEARCH_V2", None)
            .unwrap_err()
            .code(),
        "TARGETING_KEY_MISSING"
    );
    assert_eq!(
        evaluate(&plan, &canary, "NOPE", Some("u"))
            .unwrap_err()
            .code(),
        "FLAG_NOT_FOUND"
    );
    // Everyone is in at 100 %, no user needed.
    let e = evaluate(&plan, &at(3, Phase::Running), "SEARCH_V2", None).unwrap();
    assert_eq!(e.reason, Reason::TargetingMatch);
}

#[test]
fn two_rollouts_choose_different_users() {
    let same = (0..10_000)
        .filter(|i| {
            let u = format!("user-{i}");
            within(place("a", &u), 10.0) && within(place("b", &u), 10.0)
        })
        .count();
    // Independent 10 % samples share about 1 % of users, not 10 %.
    assert!(same < 200, "{same}");
}
