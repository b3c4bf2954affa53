//! The state machine's rules, as tables and as properties over random action sequences.

use proptest::prelude::*;

use super::*;
use crate::time::MINUTE;

const PLAN: &str = r#"
[rollout]
id = "t"
title = "T"

[[stage]]
id = "canary"
traffic = 10
min_duration = "30m"
flags = { sample = 0.1 }

[[stage]]
id = "ga"
traffic = 100

[[metric]]
id = "latency_ms"
kind = "distribution"

[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 700ms"
window = "5m"
hold = "60m"
stages = ["canary"]

[[trigger]]
id = "slow"
title = "p95 over 900ms"
expr = "p95(latency_ms) > 900ms"
for = "5m"
action = "alert"

[[trigger]]
id = "dead"
title = "p95 over 5s"
expr = "p95(latency_ms) > 5s"
for = "5m"
action = "kill"

[[checklist]]
id = "pre"
title = "Pre"
required_for = "canary"
items = [{ id = "db", text = "DB migrated", role = "operator" }]

[[signoff]]
stage = "ga"
approvals = 2
roles = ["product", "lead"]

[[adjust]]
flag = "sample"
min = 0
max = 1
stages = ["canary"]
"#;

fn plan() -> Plan {
    crate::plan::parse("t.toml", PLAN).unwrap()
}

/// The same plan with an hour of hypercare and checklists to leave canary, to close, and to
/// resume after a kill.
fn hypercare_plan() -> Plan {
    let text = PLAN.replace("title = \"T\"\n", "title = \"T\"\nhypercare = \"1h\"\n")
        + r#"
[[checklist]]
id = "watch"
title = "Hypercare"
required_to_close = true
items = [{ id = "t180", text = "T+180 metrics reviewed" }]

[[checklist]]
id = "after-kill"
title = "After a rollback"
required_to_resume = true
items = [{ id = "asserts", text = "Quick asserts pass" }]

[[checklist]]
id = "canary-done"
title = "Canary done"
required_to_leave = "canary"
items = [{ id = "logs", text = "Logs reviewed" }]
"#;
    crate::plan::parse("h.toml", &text).unwrap()
}

fn actor(name: &str, role: Role) -> Actor {
    Actor {
        name: name.into(),
        role,
        ..Default::default()
    }
}

fn req(who: &Actor, action: Action, reason: Option<&str>, at: Millis) -> Request {
    Request {
        actor: who.clone(),
        action,
        reason: reason.map(str::to_string),
        at,
    }
}

fn held(minutes: i64) -> Readiness {
    let mut r = Readiness::new();
    r.insert(
        "p95".into(),
        GateReadiness {
            passing: minutes > 0,
            held_for: Span(minutes * MINUTE),
            hold: Span(60 * MINUTE),
            standing: Standing::Failing,
        },
    );
    r
}

fn started(plan: &Plan) -> RolloutState {
    let op = actor("olga", Role::Operator);
    let check = Action::Check {
        list: "pre".into(),
        item: "db".into(),
    };
    let (s, _) = apply(
        plan,
        &RolloutState::new(),
        &req(&op, check, None, 0),
        &held(0),
    )
    .unwrap();
    let (s, _) = apply(plan, &s, &req(&op, Action::Start, None, 0), &held(0)).unwrap();
    s
}

#[test]
fn only_the_evaluator_records_an_alert_and_only_for_an_alert_trigger() {
    let plan = plan();
    let s = started(&plan);
    let system = actor("trigger slow", Role::System);
    let alert = |trigger: &str| Action::Alert {
        trigger: trigger.into(),
    };
    let lead = actor("lee", Role::Lead);
    let forged = apply(
        &plan,
        &s,
        &req(&lead, alert("slow"), Some("x"), 1),
        &held(0),
    );
    assert_eq!(
        forged.unwrap_err().to_string(),
        "lead may not alert; allowed: system"
    );
    let silent = apply(&plan, &s, &req(&system, alert("slow"), None, 1), &held(0));
    assert_eq!(silent.unwrap_err().to_string(), "alert needs a reason");
    let kill_trigger = apply(
        &plan,
        &s,
        &req(&system, alert("dead"), Some("x"), 1),
        &held(0),
    );
    assert_eq!(
        kill_trigger.unwrap_err().to_string(),
        "no alert trigger \"dead\""
    );
    let (next, record) = apply(
        &plan,
        &s,
        &req(
            &system,
            alert("slow"),
            Some("p95 1200 ms > 900 ms for 5m"),
            1,
        ),
        &held(0),
    )
    .unwrap();
    assert_eq!(next.version, s.version + 1);
    assert_eq!(record.before, record.after);
    assert_eq!(
        record.reason.as_deref(),
        Some("p95 1200 ms > 900 ms for 5m")
    );
}

#[test]
fn start_needs_the_preflight_checklist() {
    let plan = plan();
    let op = actor("olga", Role::Operator);
    let refused = apply(
        &plan,
        &RolloutState::new(),
        &req(&op, Action::Start, None, 0),
        &held(0),
    );
    assert_eq!(
        refused.unwrap_err().to_string(),
        "not ready to enter canary: checklist pre has 1 open item(s): db"
    );
    let s = started(&plan);
    assert_eq!(
        (s.phase, s.stage, s.traffic(&plan)),
        (Phase::Running, Some(0), 10.0)
    );
}

#[test]
fn progress_says_exactly_what_is_missing() {
    let plan = plan();
    let s = started(&plan);
    let op = actor("olga", Role::Operator);
    let refused = apply(
        &plan,
        &s,
        &req(&op, Action::Progress, None, 20 * MINUTE),
        &held(41),
    )
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "not ready to enter ga: stage canary has run 20m of its minimum 30m; gate p95 has held 41m of 1h 00m; sign-off for ga has 0 of 2 approvals"
    );
    let no_data = apply(
        &plan,
        &s,
        &req(&op, Action::Progress, None, 40 * MINUTE),
        &Readiness::new(),
    )
    .unwrap_err();
    assert!(
        no_data.to_string().contains("gate p95 has no data"),
        "{no_data}"
    );
}

#[test]
fn sign_offs_need_distinct_people_of_the_right_roles() {
    let plan = plan();
    let s = started(&plan);
    let pam = actor("pam", Role::Product);
    let (s, _) = apply(&plan, &s, &req(&pam, Action::Approve, None, 1), &held(0)).unwrap();
    let again = apply(&plan, &s, &req(&pam, Action::Approve, None, 2), &held(0)).unwrap_err();
    assert_eq!(again.to_string(), "pam already approved ga");
    let op = actor("olga", Role::Operator);
    assert!(matches!(
        apply(&plan, &s, &req(&op, Action::Approve, None, 2), &held(0)),
        Err(Refusal::Forbidden { .. })
    ));
    let lee = actor("lee", Role::Lead);
    let (s, _) = apply(&plan, &s, &req(&lee, Action::Approve, None, 3), &held(0)).unwrap();
    let (s, record) = apply(
        &plan,
        &s,
        &req(&op, Action::Progress, None, 61 * MINUTE),
        &held(61),
    )
    .unwrap();
    assert_eq!((s.stage, s.traffic(&plan)), (Some(1), 100.0));
    assert_eq!(record.before.stage.as_deref(), Some("canary"));
    assert_eq!(record.after.stage.as_deref(), Some("ga"));
}

#[test]
fn a_lead_override_with_a_reason_unblocks_a_gate() {
    let plan = plan();
    let s = started(&plan);
    let lee = actor("lee", Role::Lead);
    let op = actor("olga", Role::Operator);
    let gate = Action::Override { gate: "p95".into() };
    assert!(matches!(
        apply(&plan, &s, &req(&lee, gate.clone(), None, 1), &held(0)),
        Err(Refusal::ReasonRequired { .. })
    ));
    assert!(matches!(
        apply(&plan, &s, &req(&op, gate.clone(), Some("x"), 1), &held(0)),
        Err(Refusal::Forbidden { .. })
    ));
    let (s, _) = apply(
        &plan,
        &s,
        &req(&lee, gate, Some("p95 probe is flaky"), 1),
        &held(0),
    )
    .unwrap();
    let refused = apply(
        &plan,
        &s,
        &req(&op, Action::Progress, None, 31 * MINUTE),
        &held(0),
    )
    .unwrap_err();
    assert!(!refused.to_string().contains("gate p95"), "{refused}");
}

#[test]
fn kill_needs_a_reason_always_works_and_only_resume_leaves_it() {
    let plan = plan();
    let s = started(&plan);
    let pam = actor("pam", Role::Product);
    assert!(matches!(
        apply(&plan, &s, &req(&pam, Action::Kill, Some("  "), 1), &held(0)),
        Err(Refusal::ReasonRequired { .. })
    ));
    let (killed, record) = apply(
        &plan,
        &s,
        &req(&pam, Action::Kill, Some("p95 > 900ms"), 1),
        &held(0),
    )
    .unwrap();
    assert_eq!((killed.phase, killed.traffic(&plan)), (Phase::Killed, 0.0));
    assert_eq!(record.after.traffic, 0.0);
    let op = actor("olga", Role::Operator);
    for action in [Action::Progress, Action::Pause, Action::Kill] {
        assert!(apply(&plan, &killed, &req(&op, action, Some("r"), 2), &held(99)).is_err());
    }
    let lee = actor("lee", Role::Lead);
    let (resumed, _) = apply(
        &plan,
        &killed,
        &req(&lee, Action::Resume, Some("fixed"), 3),
        &held(0),
    )
    .unwrap();
    assert_eq!(
        (resumed.phase, resumed.stage, resumed.stage_entered_at),
        (Phase::Running, Some(0), Some(3))
    );
}

fn arb_actor() -> impl Strategy<Value = Actor> {
    prop::sample::select(vec![
        actor("vic", Role::Viewer),
        actor("olga", Role::Operator),
        actor("pam", Role::Product),
        actor("lee", Role::Lead),
        actor("lou", Role::Lead),
        actor("trigger slow", Role::System),
    ])
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Start),
        Just(Action::Progress),
        Just(Action::Pause),
        Just(Action::Resume),
        Just(Action::Kill),
        Just(Action::StepBack),
        Just(Action::Close),
        Just(Action::Approve),
        Just(Action::Override { gate: "p95".into() }),
        Just(Action::Alert {
            trigger: "slow".into()
        }),
        Just(Action::Ack {
            alert: "slow".into(),
            outcome: None,
        }),
        Just(Action::Ack {
            alert: "kill".into(),
            outcome: None,
        }),
        Just(Action::Check {
            list: "pre".into(),
            item: "db".into()
        }),
        Just(Action::Adjust {
            flag: "sample".into(),
            value: FlagValue::Number(0.5),
        }),
        Just(Action::Adjust {
            flag: "sample".into(),
            value: FlagValue::Number(2.0),
        }),
        Just(Action::Uncheck {
            list: "pre".into(),
            item: "db".into()
        }),
    ]
}

proptest! {
    #[test]
    fn random_sequences_keep_the_invariants(
        steps in prop::collection::vec((arb_actor(), arb_action(), any::<bool>(), 0i64..100), 1..60),
        hypercare in any::<bool>(),
    ) {
        let plan = if hypercare { hypercare_plan() } else { plan() };
        let mut state = RolloutState::new();
        let mut audit = Vec::new();
        let mut now = 0;
        for (who, action, with_reason, held_minutes) in steps {
            now += 5 * MINUTE;
            let request = req(&who, action.clone(), with_reason.then_some("because"), now);
            match apply(&plan, &state, &request, &held(held_minutes)) {
                Ok((next, record)) => {
                    if state.phase == Phase::Killed && next.phase != Phase::Killed {
                        prop_assert_eq!(&action, &Action::Resume, "only resume leaves killed");
                    }
                    if let (Some(a), Some(b)) = (state.stage, next.stage) {
                        let back = action == Action::StepBack && b + 1 == a;
                        prop_assert!(b == a || b == a + 1 || back, "stage {} -> {} skips", a, b);
                    }
                    if action == Action::StepBack {
                        prop_assert!(state.stage.is_some_and(|a| a > 0), "step back from {:?}", state.stage);
                        prop_assert!(state.phase != Phase::Killed, "step back out of a kill");
                        prop_assert!(with_reason, "a step back without a reason");
                    }
                    prop_assert_eq!(next.version, state.version + 1);
                    // Besides the open alerts, nothing else of the state.
                    let rest = |s: &RolloutState| RolloutState {
                        version: state.version,
                        open_alerts: Default::default(),
                        ..s.clone()
                    };
                    if matches!(action, Action::Alert { .. }) {
                        // An alert is a record that opens an alert, not a change.
                        prop_assert_eq!(who.role, Role::System);
                        prop_assert_eq!(&record.before, &record.after);
                        prop_assert!(next.open_alerts.contains_key("slow"));
                        prop_assert_eq!(rest(&next), rest(&state));
                    }
                    if let Action::Ack { alert, .. } = &action {
                        // Only what was open can be acknowledged, and it closes.
                        prop_assert!(state.open_alerts.contains_key(alert));
                        prop_assert!(!next.open_alerts.contains_key(alert));
                        prop_assert_eq!(rest(&next), rest(&state));
                    }
                    if let Action::Adjust { value, .. } = &action {
                        // Within bounds, in a live stage the plan names, and published.
                        prop_assert_eq!(value, &FlagValue::Number(0.5));
                        prop_assert_eq!(state.stage, Some(0));
                        prop_assert!(with_reason);
                        let desired = crate::actuate::Desired::of(&plan, &next);
                        prop_assert_eq!(desired.flags.get("sample"), Some(value));
                    }
                    // An adjustment lives only within the stage it was made in, and never
                    // past a kill.
                    if next.stage != state.stage || next.phase == Phase::Killed {
                        prop_assert!(next.adjusted.is_empty(), "{:?} kept {:?}", action, next.adjusted);
                    }
                    if state.stage_entered_at != next.stage_entered_at {
                        prop_assert!(next.adjusted.is_empty());
                    }
                    if action == Action::Kill && who.role == Role::System {
                        prop_assert!(next.open_alerts.contains_key("kill"), "an automatic kill opens");
                    }
                    prop_assert_eq!(&record.after, &next.summary(&plan));
                    audit.push(record);
                    state = next;
                }
                Err(refusal) => {
                    if who.role == Role::Viewer {
                        let forbidden = matches!(refusal, Refusal::Forbidden { .. });
                        prop_assert!(forbidden);
                    }
                }
            }
            let stage_traffic = state.stage.and_then(|i| plan.stages.get(i)).map_or(0.0, |s| s.traffic);
            prop_assert!(state.traffic(&plan) <= stage_traffic);
            if state.phase == Phase::Killed {
                prop_assert_eq!(state.traffic(&plan), 0.0);
            }
            if state.phase == Phase::Hypercare {
                // The watch after launch is at the last stage, armed, at its full traffic.
                prop_assert!(hypercare && state.phase.armed());
                prop_assert_eq!(state.stage, Some(plan.stages.len() - 1));
                prop_assert_eq!(state.traffic(&plan), plan.stages[plan.stages.len() - 1].traffic);
            }
            // Whatever came before (step backs included), a kill with a reason still wins
            // from any live phase.
            if matches!(state.phase, Phase::Running | Phase::Paused | Phase::Hypercare) {
                let kill = req(&actor("olga", Role::Operator), Action::Kill, Some("stop"), now);
                let killed = apply(&plan, &state, &kill, &held(0));
                prop_assert!(killed.is_ok_and(|(k, _)| k.phase == Phase::Killed));
            }
        }
        prop_assert_eq!(audit.len() as u64, state.version, "one audit record per accepted action");
    }

    /// What the page and `cutover status` show as blocking progress is exactly what the
    /// state machine would refuse: no blockers means a permitted role's progress succeeds.
    #[test]
    fn progress_blockers_agree_with_apply(
        steps in prop::collection::vec((arb_actor(), arb_action(), any::<bool>()), 0..30),
        held_minutes in 0i64..100,
        hypercare in any::<bool>(),
    ) {
        let plan = if hypercare { hypercare_plan() } else { plan() };
        let mut state = RolloutState::new();
        let mut now = 0;
        for (who, action, with_reason) in steps {
            now += 5 * MINUTE;
            let request = req(&who, action, with_reason.then_some("because"), now);
            if let Ok((next, _)) = apply(&plan, &state, &request, &held(99)) {
                state = next;
            }
        }
        now += 5 * MINUTE;
        let readiness = held(held_minutes);
        let blockers = progress_blockers(&plan, &state, &readiness, now);
        let step = if state.phase == Phase::NotStarted { Action::Start } else { Action::Progress };
        let lead = actor("lee", Role::Lead);
        let result = apply(&plan, &state, &req(&lead, step, None, now), &readiness);
        prop_assert_eq!(blockers.is_empty(), result.is_ok(), "{:?} vs {:?}", blockers, result.err());
    }
}

fn running_at(stage: usize) -> RolloutState {
    let mut state = RolloutState::new();
    state.phase = Phase::Running;
    state.stage = Some(stage);
    state.version = 7;
    state
}

#[test]
fn a_plan_edit_maps_a_running_rollout_by_stage_id_and_says_so() {
    let old = plan();
    // A new first stage: index 0 is now "shadow", and the canary is #2.
    let text = PLAN.replacen(
        "[[stage]]\nid = \"canary\"",
        "[[stage]]\nid = \"shadow\"\ntraffic = 0\n\n[[stage]]\nid = \"canary\"",
        1,
    );
    let new = crate::plan::parse("t.toml", &text).unwrap();
    let state = running_at(0);
    let Ok(Reconciled::Changed(next, record)) = reconcile(&old, &new, &state, true, 5) else {
        panic!("the canary moved: a change to record");
    };
    assert_eq!(next.stage, Some(1), "still the canary, by id");
    assert_eq!(next.traffic(&new), 10.0, "traffic did not move");
    assert_eq!(next.version, 8);
    assert_eq!(record.action, Action::PlanChanged);
    assert_eq!(record.actor.role, Role::System);
    assert!(
        record
            .reason
            .as_deref()
            .unwrap()
            .contains("stage canary moved from #1 to #2 of 3"),
        "{record:?}"
    );
    // Mapping again onto the same plan changes nothing.
    assert_eq!(
        reconcile(&new, &new, &next, false, 6),
        Ok(Reconciled::Unchanged)
    );
}

#[test]
fn a_plan_edit_that_changes_the_current_stage_traffic_is_recorded() {
    let old = plan();
    let new =
        crate::plan::parse("t.toml", &PLAN.replacen("traffic = 10", "traffic = 25", 1)).unwrap();
    let Ok(Reconciled::Changed(next, record)) = reconcile(&old, &new, &running_at(0), true, 5)
    else {
        panic!("traffic changed: a change to record");
    };
    assert_eq!(next.stage, Some(0));
    assert!(record.reason.unwrap().contains("from 10% to 25%"));
    assert_eq!((record.before.traffic, record.after.traffic), (10.0, 25.0));
}

/// An edit of a kill's rollback flags under a killed rollout changes what actuators are sent:
/// a new version with a record, never the same version republished with other flags. Any
/// other edit (a re-pointed webhook, which only the plan's hash sees) is recorded too.
#[test]
fn every_plan_edit_is_a_new_version_with_a_record() {
    let old = plan();
    let mut killed = running_at(0);
    killed.phase = Phase::Killed;
    let mut new = old.clone();
    new.rollback_flags
        .insert("NEW_PATH".into(), crate::flag::FlagValue::Bool(false));
    let Ok(Reconciled::Changed(next, record)) = reconcile(&old, &new, &killed, true, 5) else {
        panic!("the rollback flags changed under a kill");
    };
    assert_eq!(next.version, killed.version + 1);
    assert!(
        record
            .reason
            .unwrap()
            .contains("what its kill publishes changed")
    );
    let Ok(Reconciled::Changed(next, record)) = reconcile(&old, &old, &running_at(0), true, 5)
    else {
        panic!("an edit the plan's body does not show");
    };
    assert_eq!(next.version, running_at(0).version + 1);
    assert!(
        record
            .reason
            .unwrap()
            .contains("nothing it publishes moved")
    );
    assert_eq!(
        reconcile(&old, &old, &running_at(0), false, 5),
        Ok(Reconciled::Unchanged)
    );
}

#[test]
fn a_plan_that_drops_the_current_stage_is_refused_and_a_fresh_rollout_is_untouched() {
    let old = plan();
    let new = crate::plan::parse("t.toml", &PLAN.replace("canary", "pilot")).unwrap();
    assert!(matches!(
        reconcile(&old, &new, &running_at(0), true, 5),
        Err(ReconcileError::StageRemoved { .. })
    ));
    assert_eq!(
        reconcile(&old, &new, &RolloutState::new(), false, 5),
        Ok(Reconciled::Unchanged)
    );
}

#[test]
fn step_back_returns_to_the_previous_stage_and_its_clock_restarts() {
    let plan = plan();
    let op = actor("olga", Role::Operator);
    let at = 90 * MINUTE;
    let back = |state: &RolloutState| {
        apply(
            &plan,
            state,
            &req(&op, Action::StepBack, Some("recall dropped"), at),
            &held(0),
        )
    };
    let (next, record) = back(&running_at(1)).unwrap();
    assert_eq!(
        (next.phase, next.stage, next.stage_entered_at),
        (Phase::Running, Some(0), Some(at))
    );
    assert_eq!(record.before.stage.as_deref(), Some("ga"));
    assert_eq!(record.after.stage.as_deref(), Some("canary"));
    assert_eq!(next.traffic(&plan), 10.0);
    // A paused rollout stays paused; a completed one runs again in the stage before the last.
    let mut paused = running_at(1);
    paused.phase = Phase::Paused;
    assert_eq!(back(&paused).unwrap().0.phase, Phase::Paused);
    let mut completed = running_at(1);
    completed.phase = Phase::Completed;
    let (again, _) = back(&completed).unwrap();
    assert_eq!((again.phase, again.stage), (Phase::Running, Some(0)));
}

#[test]
fn step_back_is_refused_where_there_is_nothing_to_step_back_to() {
    let plan = plan();
    let op = actor("olga", Role::Operator);
    let step = |state: &RolloutState, who: &Actor, reason: Option<&str>| {
        apply(
            &plan,
            state,
            &req(who, Action::StepBack, reason, 0),
            &held(0),
        )
    };
    assert!(matches!(
        step(&running_at(0), &op, Some("r")),
        Err(Refusal::FirstStage { stage }) if stage == "canary"
    ));
    let mut killed = running_at(1);
    killed.phase = Phase::Killed;
    assert!(matches!(
        step(&killed, &op, Some("r")),
        Err(Refusal::WrongPhase { .. })
    ));
    assert!(matches!(
        step(&RolloutState::new(), &op, Some("r")),
        Err(Refusal::WrongPhase { .. })
    ));
    assert!(matches!(
        step(&running_at(1), &op, None),
        Err(Refusal::ReasonRequired { .. })
    ));
    let viewer = actor("vic", Role::Viewer);
    assert!(matches!(
        step(&running_at(1), &viewer, Some("r")),
        Err(Refusal::Forbidden { .. })
    ));
    // A trigger steps back whatever the permissions say, as it kills.
    let mut locked = plan.clone();
    locked.permissions.step_back = vec![Role::Lead];
    let system = actor("trigger recall", Role::System);
    let by_trigger = apply(
        &locked,
        &running_at(1),
        &req(&system, Action::StepBack, Some("recall below 0.85"), 0),
        &held(0),
    );
    assert_eq!(by_trigger.unwrap().0.stage, Some(0));
}

#[test]
fn hypercare_keeps_the_rollout_live_until_a_close() {
    let plan = hypercare_plan();
    let lead = actor("lee", Role::Lead);
    let op = actor("olga", Role::Operator);
    let at = 10 * MINUTE;
    let (care, record) = apply(
        &plan,
        &running_at(1),
        &req(&lead, Action::Progress, None, at),
        &held(99),
    )
    .unwrap();
    assert_eq!(
        (care.phase, care.hypercare_since),
        (Phase::Hypercare, Some(at))
    );
    assert_eq!(record.after.phase, Phase::Hypercare);
    assert!(care.phase.armed(), "triggers stay armed in hypercare");
    assert_eq!(care.traffic(&plan), 100.0);
    // Not before the watch has run and its checklist is done; the refusal says both.
    let close = |state: &RolloutState, now: Millis| {
        apply(
            &plan,
            state,
            &req(&lead, Action::Close, None, now),
            &held(99),
        )
    };
    match close(&care, at) {
        Err(Refusal::NotReady { blockers, .. }) => assert_eq!(
            blockers,
            [
                "hypercare has run 0s of 1h 00m",
                "checklist watch has 1 open item(s): t180"
            ]
        ),
        other => panic!("{other:?}"),
    }
    let check = Action::Check {
        list: "watch".into(),
        item: "t180".into(),
    };
    let (checked, _) = apply(&plan, &care, &req(&op, check, None, at), &held(99)).unwrap();
    assert!(close(&checked, at + 59 * MINUTE).is_err());
    let (closed, _) = close(&checked, at + 61 * MINUTE).unwrap();
    assert_eq!(
        (closed.phase, closed.hypercare_since),
        (Phase::Completed, None)
    );
    // Kill and step back still work during the watch.
    let kill = req(&op, Action::Kill, Some("errors"), at);
    assert_eq!(
        apply(&plan, &care, &kill, &held(0)).unwrap().0.phase,
        Phase::Killed
    );
    let back = req(&op, Action::StepBack, Some("p99"), at);
    let (back, _) = apply(&plan, &care, &back, &held(0)).unwrap();
    assert_eq!(
        (back.phase, back.stage, back.hypercare_since),
        (Phase::Running, Some(0), None)
    );
}

#[test]
fn a_checklist_can_be_required_to_leave_a_stage_and_to_resume_after_a_kill() {
    let plan = hypercare_plan();
    let mut state = running_at(0);
    state.stage_entered_at = Some(0);
    let blockers = progress_blockers(&plan, &state, &held(99), 31 * MINUTE);
    assert!(
        blockers.contains(&"checklist canary-done has 1 open item(s): logs".to_string()),
        "{blockers:?}"
    );
    // Checked before the kill does not count: the asserts are for after the rollback.
    let lead = actor("lee", Role::Lead);
    let mut killed = running_at(0);
    killed.phase = Phase::Killed;
    killed.killed = Some(Mark {
        by: lead.clone(),
        at: 10 * MINUTE,
        reason: Some("errors".into()),
    });
    let mark = |at| Mark {
        by: actor("olga", Role::Operator),
        at,
        reason: None,
    };
    killed
        .checked
        .insert("after-kill/asserts".into(), mark(5 * MINUTE));
    let resume = req(&lead, Action::Resume, Some("fixed"), 20 * MINUTE);
    assert!(matches!(
        apply(&plan, &killed, &resume, &held(0)),
        Err(Refusal::NotReady { blockers, .. })
            if blockers == ["checklist after-kill has 1 open item(s): asserts"]
    ));
    killed
        .checked
        .insert("after-kill/asserts".into(), mark(11 * MINUTE));
    let (resumed, _) = apply(&plan, &killed, &resume, &held(0)).unwrap();
    assert_eq!(resumed.phase, Phase::Running);
}

/// "lead AND product": one approval from each role. Two leads never satisfy it, and the
/// blocker names the role still missing.
#[test]
fn a_sign_off_by_each_role_needs_every_role() {
    let text = PLAN.replace(
        "approvals = 2\nroles = [\"product\", \"lead\"]",
        "each = true\nroles = [\"product\", \"lead\"]",
    );
    let plan = crate::plan::parse("each.toml", &text).unwrap();
    assert!(plan.signoffs[0].each);
    let state = running_at(0);
    let approve = |state: &RolloutState, who: &Actor| {
        apply(&plan, state, &req(who, Action::Approve, None, 0), &held(99))
    };
    let (one, _) = approve(&state, &actor("lee", Role::Lead)).unwrap();
    assert!(matches!(
        approve(&one, &actor("lou", Role::Lead)),
        Err(Refusal::Duplicate(m)) if m.contains("needs each of product, lead")
    ));
    let blockers = progress_blockers(&plan, &one, &held(99), 31 * MINUTE);
    assert!(
        blockers.contains(&"sign-off for ga needs an approval from product".to_string()),
        "{blockers:?}"
    );
    let (both, _) = approve(&one, &actor("pam", Role::Product)).unwrap();
    let blockers = progress_blockers(&plan, &both, &held(99), 31 * MINUTE);
    assert!(
        !blockers.iter().any(|b| b.contains("sign-off")),
        "{blockers:?}"
    );
    // A plan must say how many, or that each role signs.
    let neither = PLAN.replace("approvals = 2\n", "");
    let errs = crate::plan::parse("n.toml", &neither).unwrap_err();
    assert!(errs[0].to_string().contains("each = true"), "{errs:?}");
}

#[test]
fn an_adjustment_is_bounded_reasoned_and_undone_by_the_next_stage_or_a_kill() {
    let plan = plan();
    let s = started(&plan);
    let olga = actor("olga", Role::Operator);
    let adjust = |v: FlagValue| Action::Adjust {
        flag: "sample".into(),
        value: v,
    };
    let refused = |a: Action, reason: Option<&str>, who: &Actor| {
        apply(&plan, &s, &req(who, a, reason, MINUTE), &held(0)).unwrap_err()
    };
    assert!(matches!(
        refused(adjust(FlagValue::Number(0.5)), None, &olga),
        Refusal::ReasonRequired { .. }
    ));
    let e = refused(adjust(FlagValue::Number(1.5)), Some("more"), &olga);
    assert_eq!(e.to_string(), "sample must be within 0 to 1");
    let e = refused(adjust(FlagValue::Text("half".into())), Some("more"), &olga);
    assert!(e.to_string().contains("same kind"), "{e}");
    let e = refused(
        Action::Adjust {
            flag: "other".into(),
            value: FlagValue::Bool(true),
        },
        Some("x"),
        &olga,
    );
    assert!(
        e.to_string().contains("cannot be adjusted in stage canary"),
        "{e}"
    );
    assert!(matches!(
        refused(
            adjust(FlagValue::Number(0.5)),
            Some("x"),
            &actor("pam", Role::Product)
        ),
        Refusal::Forbidden { .. }
    ));

    let (a, record) = apply(
        &plan,
        &s,
        &req(
            &olga,
            adjust(FlagValue::Number(0.5)),
            Some("half the shadow load"),
            MINUTE,
        ),
        &held(0),
    )
    .unwrap();
    assert_eq!(record.action.name(), "adjust");
    let forced = crate::actuate::in_force(&plan, &a);
    assert_eq!(forced[0].value, FlagValue::Number(0.5));
    assert_eq!(forced[0].source.words(), "adjusted by olga");
    // A kill publishes the rollback; a resume comes back to the stage's own value.
    let lee = actor("lee", Role::Lead);
    let (k, _) = apply(
        &plan,
        &a,
        &req(&olga, Action::Kill, Some("x"), 2 * MINUTE),
        &held(0),
    )
    .unwrap();
    assert!(k.adjusted.is_empty());
    let (r, _) = apply(
        &plan,
        &k,
        &req(&lee, Action::Resume, Some("ok"), 3 * MINUTE),
        &held(0),
    )
    .unwrap();
    assert_eq!(
        crate::actuate::Desired::of(&plan, &r).flags.get("sample"),
        Some(&FlagValue::Number(0.1))
    );
    // The next stage publishes its own flags, and there the plan allows no adjustment.
    let pam = actor("pam", Role::Product);
    let (a, _) = apply(
        &plan,
        &a,
        &req(&pam, Action::Approve, None, 80 * MINUTE),
        &held(99),
    )
    .unwrap();
    let (a, _) = apply(
        &plan,
        &a,
        &req(&lee, Action::Approve, None, 80 * MINUTE),
        &held(99),
    )
    .unwrap();
    let (g, _) = apply(
        &plan,
        &a,
        &req(&lee, Action::Progress, None, 90 * MINUTE),
        &held(99),
    )
    .unwrap();
    assert!(g.adjusted.is_empty());
    assert_eq!(
        crate::actuate::Desired::of(&plan, &g).flags.get("sample"),
        None
    );
    let e = apply(
        &plan,
        &g,
        &req(
            &olga,
            adjust(FlagValue::Number(0.5)),
            Some("x"),
            91 * MINUTE,
        ),
        &held(99),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("cannot be adjusted in stage ga"),
        "{e}"
    );
}

/// A warning gate is shown and recorded but does not block progress unless the plan says so;
/// a critical one blocks.
#[test]
fn a_warning_gate_does_not_block_unless_the_plan_says_so() {
    let base = crate::fixtures::two_stage_plan(
        "w",
        "W",
        r#"
[[gate]]
id = "quality"
expr = "p95(latency_ms) <= 700ms"
window = "5m"
hold = "10m"
stages = ["canary"]
severity = "warning"
"#,
    );
    let failing = |plan: &Plan| {
        let mut r = Readiness::new();
        r.insert(
            "quality".into(),
            GateReadiness {
                passing: false,
                held_for: Span(0),
                hold: Span(10 * MINUTE),
                standing: Standing::Failing,
            },
        );
        let lead = actor("lee", Role::Lead);
        let (s, _) = apply(
            plan,
            &RolloutState::new(),
            &req(&lead, Action::Start, None, 0),
            &r,
        )
        .unwrap();
        (
            progress_blockers(plan, &s, &r, MINUTE),
            apply(plan, &s, &req(&lead, Action::Progress, None, MINUTE), &r),
        )
    };
    let warning = crate::plan::parse("w.toml", &base).unwrap();
    assert!(!warning.gates[0].blocks);
    let (blockers, progressed) = failing(&warning);
    assert!(blockers.is_empty(), "{blockers:?}");
    assert!(progressed.is_ok());
    let blocking = crate::plan::parse(
        "w.toml",
        &base.replace(
            "severity = \"warning\"",
            "severity = \"warning\"\nblocks = true",
        ),
    )
    .unwrap();
    let (blockers, progressed) = failing(&blocking);
    assert_eq!(blockers, ["gate quality is failing"]);
    assert!(progressed.is_err());
    let critical =
        crate::plan::parse("w.toml", &base.replace("severity = \"warning\"\n", "")).unwrap();
    assert!(critical.gates[0].blocks);
    assert!(failing(&critical).1.is_err());
}

/// Three stages; the first two promote themselves, the last needs two sign-offs to enter.
const AUTO_PLAN: &str = r#"
[rollout]
id = "auto"
title = "Auto"

[[stage]]
id = "canary"
traffic = 5
min_duration = "30m"
auto_progress = true

[[stage]]
id = "beta"
traffic = 25
min_duration = "30m"
auto_progress = true

[[stage]]
id = "ga"
traffic = 100

[[metric]]
id = "latency_ms"
kind = "distribution"

[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 700ms"
window = "5m"
hold = "60m"
stages = ["canary", "beta"]

[[signoff]]
stage = "ga"
approvals = 2
roles = ["product", "lead"]
"#;

fn auto_plan() -> Plan {
    crate::plan::parse("auto.toml", AUTO_PLAN).unwrap()
}

#[test]
fn a_ready_stage_promotes_itself_as_the_system_and_waits_for_sign_offs() {
    let plan = auto_plan();
    let lead = actor("lee", Role::Lead);
    let (s, _) = apply(
        &plan,
        &RolloutState::new(),
        &req(&lead, Action::Start, None, 0),
        &held(0),
    )
    .unwrap();
    // Not before its minimum duration, nor before the gate has held its hour.
    assert_eq!(auto_progress(&plan, &s, &held(60), 20 * MINUTE), None);
    assert_eq!(auto_progress(&plan, &s, &held(59), 61 * MINUTE), None);
    // An open alert holds it until someone acknowledges it.
    let mut alerted = s.clone();
    alerted.open_alerts.insert(
        "slow".into(),
        OpenAlert {
            since: 60 * MINUTE,
            by: "trigger slow".into(),
            kind: OpenAlertKind::Alert,
        },
    );
    assert_eq!(auto_progress(&plan, &alerted, &held(60), 61 * MINUTE), None);
    let request = auto_progress(&plan, &s, &held(60), 61 * MINUTE).expect("ready");
    assert_eq!(
        (request.actor.role, request.actor.name.as_str()),
        (Role::System, AUTO_ACTOR)
    );
    assert!(
        request
            .reason
            .as_deref()
            .unwrap()
            .contains("on to beta at 25%"),
        "{request:?}"
    );
    let (s, record) = apply(&plan, &s, &request, &held(60)).unwrap();
    assert_eq!(s.stage, Some(1));
    assert_eq!(
        record.action,
        Action::AutoProgress {
            stage: "canary".into()
        }
    );
    assert_eq!(
        auto_progress_note(&plan, &s).as_deref(),
        Some("Progresses by itself to ga once ready; pause to stop it")
    );
    // Beta is ready but ga wants two sign-offs: nothing until both are given.
    let at = 61 * MINUTE + 61 * MINUTE;
    assert_eq!(auto_progress(&plan, &s, &held(60), at), None);
    let mut s = s;
    for who in [actor("pat", Role::Product), lead.clone()] {
        s = apply(&plan, &s, &req(&who, Action::Approve, None, at), &held(60))
            .unwrap()
            .0;
    }
    let request = auto_progress(&plan, &s, &held(60), at).expect("signed off");
    let (s, _) = apply(&plan, &s, &request, &held(60)).unwrap();
    assert_eq!(s.stage, Some(2));
    // The last stage completes by a person only.
    assert_eq!(auto_progress(&plan, &s, &held(60), at + 120 * MINUTE), None);
    // Nobody but the system may ask for it.
    let forged = req(&lead, Action::AutoProgress { stage: "ga".into() }, None, at);
    assert!(matches!(
        apply(&plan, &s, &forged, &held(60)),
        Err(Refusal::Forbidden { .. })
    ));
}

#[test]
fn auto_progress_is_refused_on_the_last_stage_and_without_a_minimum() {
    let last = AUTO_PLAN.replace(
        "id = \"ga\"\ntraffic = 100\n",
        "id = \"ga\"\ntraffic = 100\nauto_progress = true\n",
    );
    let errs = crate::plan::parse("a.toml", &last).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("auto_progress on the last stage")),
        "{errs:?}"
    );
    let bare = AUTO_PLAN.replacen(
        "min_duration = \"30m\"\nauto_progress = true\n",
        "auto_progress = true\n",
        1,
    );
    let errs = crate::plan::parse("a.toml", &bare).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("auto_progress needs a min_duration")),
        "{errs:?}"
    );
}

#[derive(Debug, Clone)]
enum Step {
    /// The evaluator reads the state and decides (its request is committed later).
    Read,
    /// The evaluator's pending request reaches the commit.
    Commit,
    Pause,
    Resume,
    Progress,
    Back,
    Kill,
    Approve,
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Read),
        3 => Just(Step::Commit),
        2 => Just(Step::Pause),
        2 => Just(Step::Resume),
        1 => Just(Step::Progress),
        1 => Just(Step::Back),
        1 => Just(Step::Kill),
        1 => Just(Step::Approve),
    ]
}

proptest! {
    /// The evaluator decides on the state it read, and the commit decides again on the newest:
    /// whatever got in between (a pause, a person's progress, a step back, a kill), an
    /// automatic progress never lands on a paused or killed rollout, never moves more than the
    /// one stage it named, and never leaves a stage a step back or a resume put it in.
    #[test]
    fn a_pause_or_a_person_racing_auto_progress_always_wins(
        steps in prop::collection::vec((arb_step(), 0i64..40), 1..80),
    ) {
        let plan = auto_plan();
        let lead = actor("lee", Role::Lead);
        let mut state = apply(&plan, &RolloutState::new(), &req(&lead, Action::Start, None, 0), &held(0))
            .unwrap()
            .0;
        let mut pending: Option<Request> = None;
        let mut now = 0;
        for (step, minutes) in steps {
            now += minutes * MINUTE;
            let ready = held(60);
            let person = |action: Action, reason: Option<&str>| req(&lead, action, reason, now);
            let request = match step {
                Step::Read => {
                    pending = auto_progress(&plan, &state, &ready, now);
                    if pending.is_some() {
                        prop_assert_eq!(state.phase, Phase::Running);
                        prop_assert!(!state.manual_only);
                    }
                    continue;
                }
                Step::Commit => match pending.take() {
                    Some(mut p) => {
                        p.at = now;
                        p
                    }
                    None => continue,
                },
                Step::Pause => person(Action::Pause, None),
                Step::Resume => person(Action::Resume, Some("fixed")),
                Step::Progress => person(Action::Progress, None),
                Step::Back => person(Action::StepBack, Some("worse")),
                Step::Kill => person(Action::Kill, Some("bad")),
                Step::Approve => person(Action::Approve, None),
            };
            let before = state.clone();
            if let Ok((next, _)) = apply(&plan, &state, &request, &ready) {
                if let Action::AutoProgress { stage } = &request.action {
                    prop_assert_eq!(before.phase, Phase::Running, "auto progress while {}", before.phase);
                    prop_assert!(!before.manual_only, "auto progress out of a stage a person must leave");
                    prop_assert!(before.open_alerts.is_empty(), "auto progress past an open alert");
                    let from = before.stage.unwrap();
                    prop_assert_eq!(&plan.stages[from].id, stage);
                    prop_assert_eq!(next.stage, Some(from + 1));
                }
                state = next;
            } else if matches!(request.action, Action::AutoProgress { .. }) {
                // Refused only for a reason that holds now.
                let here = before.stage.map(|i| plan.stages[i].id.clone());
                let Action::AutoProgress { stage } = &request.action else { unreachable!() };
                let stale = here.as_ref() != Some(stage);
                prop_assert!(
                    before.phase != Phase::Running || before.manual_only || stale
                        || !before.open_alerts.is_empty()
                        || !progress_blockers(&plan, &before, &ready, now).is_empty(),
                    "refused for nothing: {:?}", before
                );
            }
        }
    }
}
