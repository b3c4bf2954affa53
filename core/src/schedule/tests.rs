use super::*;
use crate::role::Role;
use crate::rollout::{Action, Actor, Request, apply};
use crate::time::{DAY, HOUR, MINUTE};

const PLAN: &str = r#"
[rollout]
id = "clocked"
title = "Clocked"

[[stage]]
id = "canary"
traffic = 10
max_duration = "2h"

[[stage]]
id = "full"
traffic = 100
max_duration = "1h"
on_max_duration = "step_back"

[[checklist]]
id = "pre"
title = "Before"
phase = "T-60m"
items = [
  { id = "backup", text = "Backup taken" },
  { id = "comms", text = "Comms sent", phase = "T-15m" },
  { id = "label", text = "A label, not a time", phase = "Launch Day" },
]

[[checklist]]
id = "after"
title = "After"
items = [{ id = "smoke", text = "Smoke test", phase = "T+15m" }]

[[checklist]]
id = "nightly"
title = "Nightly"
items = [{ id = "validate", text = "Nightly validation", days = 3 }]
"#;

fn plan() -> Plan {
    crate::plan::parse("clocked.toml", PLAN).unwrap()
}

fn op(action: Action, at: Millis) -> Request {
    Request {
        actor: Actor {
            name: "olga".into(),
            role: Role::Operator,
            ..Default::default()
        },
        action,
        reason: None,
        at,
    }
}

fn run(plan: &Plan, state: RolloutState, action: Action, at: Millis) -> RolloutState {
    apply(plan, &state, &op(action, at), &Default::default())
        .unwrap()
        .0
}

#[test]
fn items_are_due_from_t0_and_overdue_once_past() {
    let plan = plan();
    let t0 = 100 * DAY;
    let scheduled = run(
        &plan,
        RolloutState::new(),
        Action::Schedule { t0 },
        t0 - 2 * HOUR,
    );
    let early = clock(&plan, &scheduled, t0 - 2 * HOUR);
    let order: Vec<&str> = early.items.iter().map(|i| i.item.as_str()).collect();
    assert_eq!(
        order,
        ["backup", "comms", "smoke"],
        "earliest first, labels left out"
    );
    assert!(early.items.iter().all(|i| i.status == DueStatus::Upcoming));
    assert_eq!(early.label(t0 - 2 * HOUR).as_deref(), Some("T-2h 00m"));

    let later = clock(&plan, &scheduled, t0 - 30 * MINUTE);
    assert_eq!(
        later.overdue().map(|i| i.item.as_str()).collect::<Vec<_>>(),
        ["backup"]
    );
    assert_eq!(later.next().map(|i| i.item.as_str()), Some("comms"));

    let checked = run(
        &plan,
        scheduled,
        Action::Check {
            list: "pre".into(),
            item: "backup".into(),
        },
        t0 - 29 * MINUTE,
    );
    let after = clock(&plan, &checked, t0 - 10 * MINUTE);
    assert_eq!(after.items[0].status, DueStatus::Done);
    assert_eq!(
        after.items[1].status,
        DueStatus::Overdue,
        "comms was due at T-15m"
    );
    assert_eq!(after.next().map(|i| i.item.as_str()), Some("smoke"));
}

#[test]
fn without_a_t0_nothing_is_overdue_and_a_start_sets_it() {
    let plan = plan();
    let fresh = RolloutState::new();
    let c = clock(&plan, &fresh, 5 * DAY);
    assert!(c.t0.is_none() && c.overdue().count() == 0);
    let started = run(&plan, fresh, Action::Start, 5 * DAY);
    assert_eq!(started.t0, Some(5 * DAY));
    let c = clock(&plan, &started, 5 * DAY + 16 * MINUTE);
    // T-60m and T-15m items were due before a start that set T-0 on the spot; T+15m too.
    assert_eq!(c.overdue().count(), 3);
}

#[test]
fn a_schedule_is_bounded_and_only_before_start() {
    let plan = plan();
    let refused = apply(
        &plan,
        &RolloutState::new(),
        &op(Action::Schedule { t0: 1000 * DAY }, DAY),
        &Default::default(),
    );
    assert!(matches!(refused, Err(crate::rollout::Refusal::Invalid(_))));
    let started = run(&plan, RolloutState::new(), Action::Start, DAY);
    let refused = apply(
        &plan,
        &started,
        &op(Action::Schedule { t0: 2 * DAY }, DAY),
        &Default::default(),
    );
    assert!(matches!(
        refused,
        Err(crate::rollout::Refusal::WrongPhase { .. })
    ));
}

#[test]
fn an_overrun_is_acted_on_once_per_entry() {
    let plan = plan();
    let started = run(&plan, RolloutState::new(), Action::Start, DAY);
    assert!(
        overrun_due(&plan, &started, DAY + 2 * HOUR).is_none(),
        "not past yet"
    );
    let over = overrun_due(&plan, &started, DAY + 2 * HOUR + 1).unwrap();
    assert_eq!(
        (over.stage.as_str(), over.action),
        ("canary", TriggerAction::Alert)
    );
    let system = Request {
        actor: Actor {
            name: "timebox".into(),
            role: Role::System,
            ..Default::default()
        },
        action: Action::Timebox {
            stage: "canary".into(),
        },
        reason: Some(over.reason()),
        at: DAY + 2 * HOUR + 1,
    };
    let (noted, _) = apply(&plan, &started, &system, &Default::default()).unwrap();
    assert!(overrun_due(&plan, &noted, DAY + 3 * HOUR).is_none());
    assert!(
        overrun(&plan, &noted, DAY + 3 * HOUR).is_some(),
        "still says so"
    );
    assert!(
        apply(&plan, &noted, &system, &Default::default()).is_err(),
        "once"
    );
    let mut person = system.clone();
    person.actor.role = Role::Lead;
    assert!(
        apply(&plan, &started, &person, &Default::default()).is_err(),
        "system only"
    );
}

#[test]
fn a_nightly_item_needs_consecutive_days() {
    let plan = plan();
    let check = || Action::Check {
        list: "nightly".into(),
        item: "validate".into(),
    };
    let list = &plan.checklists[2];
    let item = &list.items[0];
    let mut s = run(&plan, RolloutState::new(), check(), 10 * DAY + HOUR);
    assert!(!s.item_done(list, item, 0));
    assert!(
        apply(
            &plan,
            &s,
            &op(check(), 10 * DAY + 5 * HOUR),
            &Default::default()
        )
        .is_err(),
        "one check a day"
    );
    s = run(&plan, s, check(), 11 * DAY + HOUR);
    // A day missed starts the run again.
    s = run(&plan, s, check(), 13 * DAY + HOUR);
    assert_eq!(s.days_in_a_row("nightly", "validate"), 1);
    s = run(&plan, s, check(), 14 * DAY + HOUR);
    s = run(&plan, s, check(), 15 * DAY + HOUR);
    assert_eq!(s.days_in_a_row("nightly", "validate"), 3);
    assert!(s.item_done(list, item, 0));
    let s = run(
        &plan,
        s,
        Action::Uncheck {
            list: "nightly".into(),
            item: "validate".into(),
        },
        15 * DAY + 2 * HOUR,
    );
    assert_eq!(
        s.days_in_a_row("nightly", "validate"),
        2,
        "an uncheck takes back the last day"
    );
    assert!(!s.item_done(list, item, 0));
}

/// A timebox recorded but whose step back never committed (the database failed between the
/// two) is still pending, until the step back lands; an alert never is.
#[test]
fn a_recorded_overrun_whose_action_failed_is_still_pending() {
    let plan = plan();
    let mut s = run(&plan, RolloutState::new(), Action::Start, DAY);
    s = run(&plan, s, Action::Progress, DAY + HOUR);
    let late = DAY + 3 * HOUR;
    assert!(
        overrun_action_pending(&plan, &s, late).is_none(),
        "not recorded yet"
    );
    let system = |action| Request {
        actor: Actor {
            name: "timebox".into(),
            role: Role::System,
            ..Default::default()
        },
        action,
        reason: Some("late".into()),
        at: late,
    };
    let timebox = Action::Timebox {
        stage: "full".into(),
    };
    let (noted, _) = apply(&plan, &s, &system(timebox), &Default::default()).unwrap();
    assert!(overrun_due(&plan, &noted, late).is_none());
    let pending = overrun_action_pending(&plan, &noted, late).unwrap();
    assert_eq!(pending.action, TriggerAction::StepBack);
    let (back, _) = apply(
        &plan,
        &noted,
        &system(Action::StepBack),
        &Default::default(),
    )
    .unwrap();
    assert!(overrun_action_pending(&plan, &back, late + MINUTE).is_none());
}

const ANCHORED: &str = r#"
[rollout]
id = "anchored"
title = "Anchored"

[[stage]]
id = "canary"
traffic = 10

[[stage]]
id = "live"
title = "Live"
traffic = 100

[[checklist]]
id = "go-live"
title = "After go-live"
phase = "live+0"
items = [
  { id = "health", text = "Immediate health check" },
  { id = "watch", text = "Watched 15 minutes", phase = "live+15m" },
]
"#;

/// An item due after a stage's entry has no time until the stage is entered, falls due that
/// long after, goes overdue once past, and moves with a re-entry (a step back and progress
/// again start its clock afresh); T-0 items are unaffected.
#[test]
fn items_due_after_a_stages_entry_count_from_its_latest_entry() {
    let plan = crate::plan::parse("anchored.toml", ANCHORED).unwrap();
    let watch = |state: &RolloutState, now| {
        clock(&plan, state, now)
            .items
            .into_iter()
            .find(|i| i.item == "watch")
            .unwrap()
    };
    let started = run(&plan, RolloutState::new(), Action::Start, 0);
    let w = watch(&started, HOUR);
    assert_eq!((w.due, w.status), (None, DueStatus::Upcoming));
    assert_eq!(w.stage.as_deref(), Some("live"));
    assert_eq!(w.label, "15m after entering Live");

    let live = run(&plan, started, Action::Progress, 2 * HOUR);
    assert_eq!(watch(&live, 2 * HOUR).due, Some(2 * HOUR + 15 * MINUTE));
    assert_eq!(
        watch(&live, 2 * HOUR + 15 * MINUTE).status,
        DueStatus::Upcoming
    );
    assert_eq!(
        watch(&live, 2 * HOUR + 16 * MINUTE).status,
        DueStatus::Overdue
    );
    // The health check is due on entry: the earliest, listed first.
    let c = clock(&plan, &live, 2 * HOUR);
    assert_eq!(c.items[0].item, "health");
    assert_eq!(c.items[0].label, "on entering Live");

    let mut request = op(Action::StepBack, 3 * HOUR);
    request.reason = Some("errors after go-live".into());
    let back = apply(&plan, &live, &request, &Default::default())
        .unwrap()
        .0;
    let again = run(&plan, back, Action::Progress, 4 * HOUR);
    let w = watch(&again, 4 * HOUR + MINUTE);
    assert_eq!(w.due, Some(4 * HOUR + 15 * MINUTE));
    assert_eq!(w.status, DueStatus::Upcoming);
}

#[test]
fn a_phase_after_a_stage_must_name_one_of_its_stages() {
    let text = ANCHORED.replace("phase = \"live+15m\"", "phase = \"golive+15m\"");
    let errors = crate::plan::parse("anchored.toml", &text).unwrap_err();
    let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        all.iter()
            .any(|e| e.contains("counts from stage \"golive\", which the plan does not have")),
        "{all:?}"
    );
    // Labels stay labels.
    assert_eq!(crate::time::stage_offset("Go-live + 5 min"), None);
    assert_eq!(
        crate::time::stage_offset("live+5m"),
        Some(("live", 5 * MINUTE))
    );
    assert_eq!(crate::time::stage_offset("T+5m"), None);
}

const RECURRING: &str = r#"
[rollout]
id = "watched"
title = "Watched"
hypercare = "3d"

[[stage]]
id = "live"
traffic = 100

[[checklist]]
id = "hypercare"
title = "Hypercare"
required_to_close = true
items = [
  { id = "daily", text = "Daily health check", every = "1d" },
  { id = "half", text = "Twice a day", every = "12h" },
]
"#;

fn in_hypercare(plan: &Plan, since: Millis) -> RolloutState {
    let started = run(plan, RolloutState::new(), Action::Start, since - HOUR);
    let state = run(plan, started, Action::Progress, since);
    assert_eq!(state.phase, crate::rollout::Phase::Hypercare);
    assert_eq!(state.hypercare_since, Some(since));
    state
}

/// Over the whole hypercare, looked at every minute, a recurring item opens exactly one
/// occurrence per period, at the period's start, each due at its end: 3 daily and 6
/// twice-daily in 3 days, none before the hypercare and none past its end.
#[test]
fn recurring_items_open_one_occurrence_per_period() {
    let plan = crate::plan::parse("watched.toml", RECURRING).unwrap();
    let since = 10 * DAY;
    let state = in_hypercare(&plan, since);
    assert!(
        clock(
            &plan,
            &run(&plan, RolloutState::new(), Action::Start, 0),
            DAY
        )
        .items
        .is_empty()
    );
    let mut opened: std::collections::BTreeMap<(String, u32), (Millis, Millis)> =
        Default::default();
    let mut now = since - HOUR;
    while now <= since + 4 * DAY {
        for i in clock(&plan, &state, now).items {
            let n = i.occurrence.unwrap();
            opened
                .entry((i.item.clone(), n))
                .or_insert((now, i.due.unwrap()));
        }
        now += MINUTE;
    }
    let daily: Vec<_> = opened.iter().filter(|((id, _), _)| id == "daily").collect();
    let half: Vec<_> = opened.iter().filter(|((id, _), _)| id == "half").collect();
    assert_eq!(daily.len(), 3);
    assert_eq!(half.len(), 6);
    for ((id, n), (first_seen, due)) in &opened {
        let every = if id == "daily" { DAY } else { 12 * HOUR };
        let n = Millis::from(*n);
        assert_eq!(
            *first_seen,
            since + (n - 1) * every,
            "{id} #{n} opens at its period"
        );
        assert_eq!(*due, since + n * every, "{id} #{n} is due at its end");
    }
}

/// A tick takes the earliest open occurrence not ticked (a late one first), a future one
/// cannot be ticked, an untick takes back the latest, and the close waits for every one.
#[test]
fn each_occurrence_is_ticked_on_its_own_and_the_close_waits_for_all() {
    let plan = crate::plan::parse("watched.toml", RECURRING).unwrap();
    let since = 10 * DAY;
    let mut s = in_hypercare(&plan, since);
    let check = |s: &RolloutState, at| {
        apply(
            &plan,
            s,
            &op(
                Action::Check {
                    list: "hypercare".into(),
                    item: "daily".into(),
                },
                at,
            ),
            &Default::default(),
        )
    };
    // Day 2 begins with day 1 unticked: day 1 is overdue, and the tick goes to it.
    let at = since + DAY + HOUR;
    let late = clock(&plan, &s, at);
    let overdue: Vec<_> = late
        .overdue()
        .map(|i| (i.item.clone(), i.occurrence))
        .collect();
    assert!(overdue.contains(&("daily".into(), Some(1))), "{overdue:?}");
    s = check(&s, at).unwrap().0;
    assert!(s.checked.contains_key("hypercare/daily#1"));
    s = check(&s, at + MINUTE).unwrap().0;
    assert!(s.checked.contains_key("hypercare/daily#2"));
    // Day 3 has not opened.
    assert!(check(&s, at + 2 * MINUTE).is_err());
    // An untick takes back the latest.
    let mut untick = op(
        Action::Uncheck {
            list: "hypercare".into(),
            item: "daily".into(),
        },
        at + 3 * MINUTE,
    );
    untick.reason = None;
    let back = apply(&plan, &s, &untick, &Default::default()).unwrap().0;
    assert!(!back.checked.contains_key("hypercare/daily#2"));
    assert!(back.checked.contains_key("hypercare/daily#1"));

    // At the end of the hypercare, the close waits for day 3 and for the twice-daily ones.
    let end = since + 3 * DAY + MINUTE;
    let blockers = crate::rollout::close_blockers(&plan, &s, &Default::default(), end);
    assert!(blockers.iter().any(|b| b.contains("daily")), "{blockers:?}");
    s = check(&s, end).unwrap().0;
    for _ in 0..6 {
        s = apply(
            &plan,
            &s,
            &op(
                Action::Check {
                    list: "hypercare".into(),
                    item: "half".into(),
                },
                end,
            ),
            &Default::default(),
        )
        .unwrap()
        .0;
    }
    assert_eq!(s.occurrences_ticked("hypercare", "half", 0), 6);
    let blockers = crate::rollout::close_blockers(&plan, &s, &Default::default(), end);
    assert!(blockers.is_empty(), "{blockers:?}");
    assert!(clock(&plan, &s, end).items.is_empty());
}

#[test]
fn a_recurring_item_needs_a_hypercare_and_no_phase_of_its_own() {
    let no_hypercare = RECURRING.replace("hypercare = \"3d\"\n", "");
    let errs = crate::plan::parse("watched.toml", &no_hypercare).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("recurs through the hypercare")),
        "{errs:?}"
    );
    let phased = RECURRING.replace("every = \"1d\" }", "every = \"1d\", phase = \"T+1d\" }");
    let errs = crate::plan::parse("watched.toml", &phased).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("leave out its phase")),
        "{errs:?}"
    );
    let often = RECURRING.replace("every = \"12h\"", "every = \"1m\"");
    let errs = crate::plan::parse("watched.toml", &often).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("400 occurrences")),
        "{errs:?}"
    );
}
