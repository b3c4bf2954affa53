use super::*;
use crate::fixtures;
use crate::gates::TriggerStatus;
use crate::plan::ChannelUrl;
use crate::role::Role;
use crate::rollout::{Actor, StateSummary};
use crate::time::{MINUTE, Span};

const CHANNELS: &str = r#"
[[gate]]
id = "p95"
title = "p95 under 700ms"
expr = "p95(latency_ms) <= 700ms"
window = "5m"
hold = "30m"

[[trigger]]
id = "slow"
title = "p95 over 900ms"
expr = "p95(latency_ms) > 900ms"
window = "5m"
for = "0s"
action = "alert"
severity = "warning"
check = "the p95 by route on the latency board"
respond = "step back to canary if it lasts 5 minutes"
owner = "on-call SRE"

[[notify]]
id = "war-room"
kind = "slack"
url_env = "WAR_ROOM_SLACK"
escalate_after = "10m"

[[notify]]
id = "on-call"
kind = "webhook"
url = "http://127.0.0.1:9/page"
secret_env = "PAGER_HMAC"
events = ["kill", "alert_fired"]
min_severity = "critical"
"#;

fn plan() -> Plan {
    crate::plan::parse(
        "n.toml",
        &fixtures::two_stage_plan("n", "Notify drill", CHANNELS),
    )
    .unwrap()
}

fn record(
    action: Action,
    before: (Phase, Option<&str>),
    after: (Phase, Option<&str>),
) -> AuditRecord {
    let summary = |(phase, stage): (Phase, Option<&str>), traffic| StateSummary {
        phase,
        stage: stage.map(str::to_string),
        traffic,
    };
    AuditRecord {
        at: 1_000,
        actor: Actor {
            name: "trigger slow".into(),
            role: Role::System,
            ..Default::default()
        },
        action,
        reason: Some("p95(latency_ms) = 950ms".into()),
        before: summary(before, 10.0),
        after: summary(after, 0.0),
    }
}

/// What the runbook says to do travels with the alert: the on-call reads it in the page.
#[test]
fn an_alert_carries_the_runbooks_guidance() {
    let plan = plan();
    let event = of_record(
        &plan,
        &record(
            Action::Alert {
                trigger: "slow".into(),
            },
            (Phase::Running, Some("canary")),
            (Phase::Running, Some("canary")),
        ),
    )
    .unwrap();
    assert!(
        event
            .lines
            .contains(&"check: the p95 by route on the latency board".to_string())
            && event
                .lines
                .contains(&"action: step back to canary if it lasts 5 minutes".to_string())
            && event.lines.contains(&"owner: on-call SRE".to_string()),
        "{:?}",
        event.lines
    );
}

#[test]
fn channels_parse_with_their_routes_and_bad_ones_are_refused_in_words() {
    let plan = plan();
    assert_eq!(plan.channels.len(), 2);
    assert_eq!(
        plan.channels[0].url,
        ChannelUrl::Env("WAR_ROOM_SLACK".into())
    );
    assert_eq!(plan.channels[0].escalate_after, Some(Span(10 * MINUTE)));
    assert_eq!(
        plan.channels[1].events,
        [EventKind::Kill, EventKind::AlertFired]
    );
    let bad = |rest: &str| {
        crate::plan::parse("b.toml", &fixtures::two_stage_plan("b", "B", rest))
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let e = bad("[[notify]]\nid = \"x\"\nkind = \"pager\"\nurl = \"http://h\"\n");
    assert!(e.contains("unknown notify kind \"pager\""), "{e}");
    let e = bad("[[notify]]\nid = \"x\"\nkind = \"slack\"\n");
    assert!(e.contains("needs one of url or url_env"), "{e}");
    let e = bad("[[notify]]\nid = \"x\"\nkind = \"webhook\"\nurl = \"h\"\nevents = [\"kil\"]\n");
    assert!(
        e.contains("must start with http") && e.contains("unknown event \"kil\""),
        "{e}"
    );
    let e = bad(
        "[[notify]]\nid = \"x\"\nkind = \"slack\"\nurl = \"http://h\"\nescalate_after = \"5m\"\n",
    );
    assert!(e.contains("the last channel"), "{e}");
}

#[test]
fn a_kill_goes_everywhere_and_an_alert_only_where_its_severity_is_taken() {
    let plan = plan();
    let kill = of_record(
        &plan,
        &record(
            Action::Kill,
            (Phase::Running, Some("canary")),
            (Phase::Killed, Some("canary")),
        ),
    )
    .unwrap();
    assert_eq!(kill.kind, EventKind::Kill);
    assert_eq!(kill.title, "Notify drill: KILLED at canary");
    assert!(
        kill.lines
            .iter()
            .any(|l| l == "by trigger slow (system); traffic now 0%")
    );
    assert_eq!(routes(&plan, &kill), [0, 1]);
    let alert = of_record(
        &plan,
        &record(
            Action::Alert {
                trigger: "slow".into(),
            },
            (Phase::Running, Some("canary")),
            (Phase::Running, Some("canary")),
        ),
    )
    .unwrap();
    assert_eq!(alert.severity, Severity::Warning);
    assert_eq!(routes(&plan, &alert), [0], "on-call takes critical only");
    let text = text(&alert, Some("https://cutover.example/r/n"));
    assert_eq!(
        text,
        "Notify drill: ALERT p95 over 900ms\n• p95(latency_ms) = 950ms\n• fires when p95(latency_ms) > 900ms over 5m\n\
         • check: the p95 by route on the latency board\n\
         • action: step back to canary if it lasts 5 minutes\n• owner: on-call SRE\n\
         https://cutover.example/r/n"
    );
    // A check or an approval tells nobody.
    let check = record(
        Action::Check {
            list: "l".into(),
            item: "i".into(),
        },
        (Phase::Running, Some("canary")),
        (Phase::Running, Some("canary")),
    );
    assert_eq!(of_record(&plan, &check), None);
    let entered = of_record(
        &plan,
        &record(
            Action::Progress,
            (Phase::Running, Some("canary")),
            (Phase::Running, Some("ga")),
        ),
    )
    .unwrap();
    assert_eq!(entered.kind, EventKind::StageEntered);
    let done = of_record(
        &plan,
        &record(
            Action::Progress,
            (Phase::Running, Some("ga")),
            (Phase::Completed, Some("ga")),
        ),
    )
    .unwrap();
    assert_eq!(done.kind, EventKind::Completed);
}

fn gate(verdict: Verdict, held: i64) -> GateStatus {
    GateStatus {
        id: "p95".into(),
        title: "p95 under 700ms".into(),
        expr: "p95(latency_ms) <= 700ms".into(),
        verdict,
        reason: None,
        comparisons: vec![],
        window: Span(5 * MINUTE),
        hold: Span(30 * MINUTE),
        held_for: Span(held),
        needs: Span(30 * MINUTE - held),
        tolerate: 0,
        failures_in_a_row: 0,
        severity: Severity::Critical,
        guards_current: true,
        cycles: 0,
        cycles_passed: 0,
        samples: 0,
        blocks: true,
        traffic: None,
    }
}

fn trigger(verdict: Verdict, fired: bool) -> TriggerStatus {
    TriggerStatus {
        id: "slow".into(),
        title: "p95 over 900ms".into(),
        expr: "p95(latency_ms) > 900ms".into(),
        verdict,
        reason: None,
        comparisons: vec![],
        action: crate::plan::TriggerAction::Alert,
        severity: Severity::Warning,
        for_: Span(0),
        true_for: Span(0),
        armed: true,
        fired,
    }
}

fn evaluated(gates: Vec<GateStatus>, triggers: Vec<TriggerStatus>) -> Evaluated {
    Evaluated {
        gates,
        triggers,
        firings: vec![],
    }
}

#[test]
fn a_lost_hold_a_resolved_alert_and_silence_are_told_once_at_the_change() {
    let plan = plan();
    let holding = evaluated(
        vec![gate(Verdict::Pass, 20 * MINUTE)],
        vec![trigger(Verdict::Pass, true)],
    );
    let failing = evaluated(
        vec![gate(Verdict::Fail, 0)],
        vec![trigger(Verdict::Fail, false)],
    );
    let events = of_evaluations(&plan, &holding, &failing, 5_000);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::GateFailing, EventKind::AlertResolved]);
    assert!(
        events[0]
            .lines
            .iter()
            .any(|l| l == "it had held 20m of 30m"),
        "{:?}",
        events[0].lines
    );
    // Still failing: nothing new.
    assert!(of_evaluations(&plan, &failing, &failing, 6_000).is_empty());
    // A gate that never held turning red is the board's business, not a message.
    let fresh = evaluated(vec![gate(Verdict::Pass, 0)], vec![]);
    assert!(
        of_evaluations(&plan, &fresh, &failing, 7_000)
            .iter()
            .all(|e| e.kind != EventKind::GateFailing)
    );
    let silent = evaluated(vec![gate(Verdict::NoData, 0)], vec![]);
    let stale = of_evaluations(&plan, &failing, &silent, 8_000);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].kind, EventKind::Stale);
    assert!(of_evaluations(&plan, &silent, &silent, 9_000).is_empty());
}

fn request(role: Role, action: Action, at: Millis) -> crate::rollout::Request {
    crate::rollout::Request {
        actor: Actor {
            name: format!("someone ({role})"),
            role,
            ..Default::default()
        },
        action,
        reason: Some("on it".into()),
        at,
    }
}

/// An alert and an automatic kill stay open until a person acknowledges them; while open,
/// each channel's `escalate_after` sends them on to the next channel, once the delay has
/// passed, and never after the acknowledgement.
#[test]
fn open_alerts_escalate_after_their_delay_until_acknowledged() {
    use crate::rollout::{OpenAlertKind, RolloutState, apply};
    let plan = plan();
    let ready = Default::default();
    let mut state = RolloutState::new();
    for (role, action) in [
        (Role::Operator, Action::Start),
        (
            Role::System,
            Action::Alert {
                trigger: "slow".into(),
            },
        ),
    ] {
        state = apply(&plan, &state, &request(role, action, MINUTE), &ready)
            .unwrap()
            .0;
    }
    assert_eq!(state.open_alerts["slow"].kind, OpenAlertKind::Alert);
    assert_eq!(state.open_alerts["slow"].since, MINUTE);
    assert!(
        escalations(&plan, &state, MINUTE + 10 * MINUTE - 1).is_empty(),
        "not yet"
    );
    assert_eq!(
        escalations(&plan, &state, 11 * MINUTE),
        [(0, "slow".to_string())],
        "war-room's 10m have passed: on to on-call"
    );
    let event = open_alert_event(&plan, "slow", &state.open_alerts["slow"], 11 * MINUTE);
    assert_eq!(
        event.key,
        format!("alert:slow:{MINUTE}"),
        "the same episode as the firing"
    );
    assert!(
        event.lines[0].starts_with("unacknowledged for 10m"),
        "{:?}",
        event.lines
    );

    // A viewer cannot acknowledge; an unknown alert is refused in words.
    assert!(
        apply(
            &plan,
            &state,
            &request(
                Role::Viewer,
                Action::Ack {
                    alert: "slow".into(),
                    outcome: None,
                },
                2 * MINUTE
            ),
            &ready
        )
        .is_err()
    );
    let unknown = apply(
        &plan,
        &state,
        &request(
            Role::Operator,
            Action::Ack {
                alert: "fast".into(),
                outcome: None,
            },
            2 * MINUTE,
        ),
        &ready,
    )
    .unwrap_err()
    .to_string();
    assert!(
        unknown.contains("no open alert \"fast\" (open: slow)"),
        "{unknown}"
    );
    let acked = apply(
        &plan,
        &state,
        &request(
            Role::Operator,
            Action::Ack {
                alert: "slow".into(),
                outcome: None,
            },
            2 * MINUTE,
        ),
        &ready,
    )
    .unwrap()
    .0;
    assert!(acked.open_alerts.is_empty());
    assert!(
        escalations(&plan, &acked, 60 * MINUTE).is_empty(),
        "acknowledged: no escalation"
    );

    // A kill is open too, by a trigger or by a person: someone must say they have it.
    let by_trigger = apply(
        &plan,
        &acked,
        &request(Role::System, Action::Kill, 3 * MINUTE),
        &ready,
    )
    .unwrap()
    .0;
    assert_eq!(by_trigger.open_alerts["kill"].kind, OpenAlertKind::Kill);
    let by_person = apply(
        &plan,
        &acked,
        &request(Role::Operator, Action::Kill, 3 * MINUTE),
        &ready,
    )
    .unwrap()
    .0;
    assert_eq!(by_person.open_alerts["kill"].kind, OpenAlertKind::Kill);
    assert_eq!(by_person.open_alerts["kill"].by, "someone (operator)");
}

#[test]
fn an_actuator_that_keeps_failing_is_told_once_per_version() {
    use crate::actuate::{ActuatorStatus, ApplyState};
    let plan = plan();
    let status = |attempts, state| ActuatorStatus {
        id: "flags".into(),
        kind: "webhook".into(),
        state,
        version: 4,
        attempts,
        error: Some("cannot reach the webhook".into()),
        at: 0,
    };
    assert!(
        of_actuators(&plan, &[status(2, ApplyState::Failed)], 0).is_empty(),
        "not yet"
    );
    assert!(of_actuators(&plan, &[status(9, ApplyState::Applied)], 0).is_empty());
    let events = of_actuators(&plan, &[status(3, ApplyState::Failed)], 0);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::ActuatorFailing);
    assert_eq!(events[0].key, "actuator:flags:4", "one episode per version");
    assert_eq!(events[0].lines, ["3 attempts: cannot reach the webhook"]);
    assert_eq!(
        of_actuators(&plan, &[status(7, ApplyState::Failed)], 9)[0].key,
        events[0].key
    );
}

/// Over a simulated hour and a half at one-second steps, updates every 30 minutes from T-0
/// until T+1h go exactly at T-0, T+30m and T+1h, one each (the test clock, not a real hour);
/// none before the start, none after the end, none once completed.
#[test]
fn status_updates_fall_on_their_interval_between_their_times() {
    use crate::plan::StatusUpdates;
    let updates = StatusUpdates {
        every: Span(30 * MINUTE),
        from: Some(0),
        until: Some(60 * MINUTE),
    };
    let t0 = 1_000_000_000;
    let mut state = RolloutState::new();
    state.t0 = Some(t0);
    assert_eq!(status_due(&updates, &state, None, t0), None, "not started");
    state.phase = Phase::Running;
    state.stage = Some(0);
    let mut sent = Vec::new();
    let mut last = None;
    let mut now = t0 - 10 * MINUTE;
    while now <= t0 + 90 * MINUTE {
        if let Some(slot) = status_due(&updates, &state, last, now) {
            sent.push((now - t0, slot - t0));
            last = Some(now);
        }
        now += 1_000;
    }
    assert_eq!(
        sent,
        [
            (0, 0),
            (30 * MINUTE, 30 * MINUTE),
            (60 * MINUTE, 60 * MINUTE)
        ]
    );
    // A server down over a slot sends it late, once, when it is back.
    assert_eq!(
        status_due(&updates, &state, Some(t0), t0 + 31 * MINUTE),
        Some(t0 + 30 * MINUTE)
    );
    state.phase = Phase::Completed;
    assert_eq!(status_due(&updates, &state, None, t0 + 30 * MINUTE), None);
}

#[test]
fn a_status_update_says_where_the_rollout_is_and_goes_only_where_asked() {
    let text = fixtures::two_stage_plan(
        "s",
        "Status drill",
        "[[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms) <= 700ms\"\nwindow = \"5m\"\nhold = \"30m\"\n\n\
         [[notify]]\nid = \"room\"\nkind = \"slack\"\nurl = \"https://chat.example/hook\"\nstatus_every = \"30m\"\nstatus_until = \"T+4h\"\n\n\
         [[notify]]\nid = \"pager\"\nkind = \"slack\"\nurl = \"https://chat.example/pager\"\n",
    );
    let plan = crate::plan::parse("s.toml", &text).unwrap();
    assert!(plan.channels[0].status.is_some() && plan.channels[1].status.is_none());
    let mut state = RolloutState::new();
    state.phase = Phase::Running;
    state.stage = Some(0);
    state.t0 = Some(0);
    let event = status_event(&plan, &state, &Evaluated::default(), 60_000);
    assert_eq!(event.title, "Status drill: status update");
    assert_eq!(event.lines[0], "RUNNING at canary, 10% traffic");
    assert_eq!(routes(&plan, &event), [0], "only the channel that asked");
    for bad in [
        "status_every = \"1s\"",
        "status_from = \"T+1h\"",
        "status_every = \"1m\"\nstatus_from = \"soon\"",
    ] {
        let text = fixtures::two_stage_plan(
            "b",
            "B",
            &format!(
                "[[notify]]\nid = \"room\"\nkind = \"slack\"\nurl = \"https://chat.example/hook\"\n{bad}\n"
            ),
        );
        assert!(crate::plan::parse("b.toml", &text).is_err(), "{bad}");
    }
}

#[test]
fn a_decision_is_told_with_who_and_why() {
    let plan = plan();
    let mut r = record(
        Action::Decide {
            decision: crate::rollout::Decision::Extend,
        },
        (Phase::Running, Some("canary")),
        (Phase::Running, Some("canary")),
    );
    r.actor = Actor {
        name: "lee".into(),
        role: Role::Lead,
        ..Default::default()
    };
    r.reason = Some("match rate dipped overnight".into());
    let event = of_record(&plan, &r).unwrap();
    assert_eq!(event.kind, EventKind::Decision);
    assert_eq!(event.title, "Notify drill: decision at canary: EXTEND");
    assert_eq!(
        event.lines,
        ["match rate dipped overnight", "by lee (lead)"]
    );
}

/// An item past its due time is one event, keyed by the item and its due time (so the
/// channels take it once however often it is asked), and none once it is ticked.
#[test]
fn an_overdue_item_is_told_once_by_its_key_and_not_when_done() {
    let text = fixtures::two_stage_plan(
        "clocked",
        "Clocked",
        r#"
[[checklist]]
id = "after"
title = "After"
items = [{ id = "smoke", text = "Smoke test", phase = "T+15m", role = "operator" }]
"#,
    );
    let plan = crate::plan::parse("c.toml", &text).unwrap();
    let mut state = RolloutState::new();
    state.t0 = Some(0);
    assert!(
        overdue_events(&plan, &state, 14 * MINUTE).is_empty(),
        "not due yet"
    );
    let events = overdue_events(&plan, &state, 20 * MINUTE);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, EventKind::Overdue);
    assert_eq!(e.title, "Clocked: OVERDUE Smoke test");
    assert_eq!(e.key, format!("overdue:after/smoke:{}", 15 * MINUTE));
    assert_eq!(
        overdue_events(&plan, &state, 30 * MINUTE)[0].key,
        e.key,
        "the same key later"
    );
    assert!(
        e.lines[0].contains("T+15m (5m ago); owner: operator"),
        "{}",
        e.lines[0]
    );
    state.checked.insert(
        "after/smoke".into(),
        crate::rollout::Mark {
            by: Actor::default(),
            at: 21 * MINUTE,
            reason: None,
        },
    );
    assert!(
        overdue_events(&plan, &state, 30 * MINUTE).is_empty(),
        "done"
    );
}
