//! What the war room is told: events derived from committed actions (an alert fired, a kill,
//! a step back, a stage entered, a launch completed) and from successive evaluations (a gate
//! that was holding turns failing, an alert that resolves, data gone stale), each routed to the
//! plan's `[[notify]]` channels by kind and severity, with one line of what happened and the
//! values against their thresholds. Pure: the server delivers them.

use serde::{Deserialize, Serialize};

use crate::actuate::{ActuatorStatus, ApplyState};
use crate::expr::CmpTrace;
use crate::gates::{Evaluated, GateStatus, Verdict};
use crate::plan::{Channel, Plan, Severity};
use crate::rollout::{Action, AuditRecord, OpenAlert, OpenAlertKind, Phase, RolloutState};
use crate::time::Millis;

pub use crate::plan::EventKind;

pub mod outbox;

/// One thing to tell people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub severity: Severity,
    pub rollout: String,
    /// One line: what happened.
    pub title: String,
    /// The values against their thresholds, the reason, who.
    pub lines: Vec<String>,
    /// Names the episode: the same key is delivered once per channel.
    pub key: String,
    pub at: Millis,
}

/// How a channel's deliveries go, as the rollout page shows it beside the actuators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub id: String,
    pub kind: String,
    pub delivered: u64,
    /// Messages waiting (the oldest is being tried).
    pub pending: usize,
    /// Messages dropped because the queue was full.
    pub dropped: u64,
    /// The last attempt failed; it is being retried.
    pub failing: bool,
    pub attempts: u32,
    pub error: Option<String>,
    pub last_delivered_at: Option<Millis>,
}

/// How much a severity weighs: a channel takes events at least as heavy as its floor.
pub fn weight(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

/// The event a committed action makes, if it is one people are told of.
pub fn of_record(plan: &Plan, record: &AuditRecord) -> Option<Event> {
    let who = format!("{} ({})", record.actor.name, record.actor.role);
    let mut lines: Vec<String> = record.reason.iter().cloned().collect();
    let event = |kind, severity, title: String, key: String, lines: Vec<String>| Event {
        kind,
        severity,
        rollout: plan.id.clone(),
        title,
        lines,
        key,
        at: record.at,
    };
    let stage = record.after.stage.clone().unwrap_or_default();
    match &record.action {
        Action::Alert { trigger } => {
            let spec = plan.triggers.iter().find(|t| &t.id == trigger);
            let severity = spec.map_or(Severity::Warning, |t| t.severity);
            let title = spec.map_or(trigger.as_str(), |t| t.title.as_str());
            // The reason has the value; the condition says the line it crossed; the runbook's
            // guidance says what to do about it.
            if let Some(t) = spec {
                lines.push(format!("fires when {} over {}", t.expr, t.window.human()));
                lines.extend(guidance(&t.guidance));
            }
            Some(event(
                EventKind::AlertFired,
                severity,
                format!("{}: ALERT {title}", plan.title),
                format!("alert:{trigger}:{}", record.at),
                lines,
            ))
        }
        Action::Ack { alert, .. } => {
            // As heavy as what it acknowledges, so it reaches every channel the alert did.
            let (severity, what) = if alert == crate::rollout::KILL_ALERT {
                (Severity::Critical, "the kill".to_string())
            } else {
                let spec = plan.triggers.iter().find(|t| &t.id == alert);
                (
                    spec.map_or(Severity::Warning, |t| t.severity),
                    format!(
                        "ALERT {}",
                        spec.map_or(alert.as_str(), |t| t.title.as_str())
                    ),
                )
            };
            lines.push(format!("by {who}"));
            Some(event(
                EventKind::Acknowledged,
                severity,
                format!("{}: acknowledged {what}", plan.title),
                format!("ack:{alert}:{}", record.at),
                lines,
            ))
        }
        Action::Decide { decision } => {
            lines.push(format!("by {who}"));
            Some(event(
                EventKind::Decision,
                Severity::Info,
                format!(
                    "{}: decision at {stage}: {}",
                    plan.title,
                    decision.as_str().to_uppercase()
                ),
                format!("decision:{}", record.at),
                lines,
            ))
        }
        // A tuning within the stage is a decision the war room hears of.
        Action::Adjust { flag, value } => {
            lines.push(format!("by {who}; until the next stage change or a kill"));
            Some(event(
                EventKind::Decision,
                Severity::Info,
                format!("{}: {flag} set to {value} at {stage}", plan.title),
                format!("adjust:{flag}:{}", record.at),
                lines,
            ))
        }
        Action::Kill => {
            lines.push(format!("by {who}; traffic now 0%"));
            Some(event(
                EventKind::Kill,
                Severity::Critical,
                format!("{}: KILLED at {stage}", plan.title),
                format!("kill:{}", record.at),
                lines,
            ))
        }
        Action::StepBack => {
            lines.push(format!("by {who}; traffic now {}%", record.after.traffic));
            Some(event(
                EventKind::StepBack,
                Severity::Warning,
                format!("{}: stepped back to {stage}", plan.title),
                format!("step_back:{}", record.at),
                lines,
            ))
        }
        Action::Timebox { stage } => Some(event(
            EventKind::Timebox,
            Severity::Warning,
            format!("{}: stage {stage} past its timebox", plan.title),
            format!("timebox:{stage}:{}", record.at),
            lines,
        )),
        Action::Start
        | Action::Progress
        | Action::AutoProgress { .. }
        | Action::Close
        | Action::Resume => match record.after.phase {
            Phase::Completed | Phase::Hypercare if record.before.phase != record.after.phase => {
                let watch = if record.after.phase == Phase::Hypercare {
                    "; hypercare begins"
                } else {
                    ""
                };
                lines.push(format!("by {who}"));
                Some(event(
                    EventKind::Completed,
                    Severity::Info,
                    format!(
                        "{}: completed at {}%{watch}",
                        plan.title, record.after.traffic
                    ),
                    format!("completed:{}", record.at),
                    lines,
                ))
            }
            Phase::Running if record.before.stage != record.after.stage => {
                lines.push(format!("by {who}"));
                Some(event(
                    EventKind::StageEntered,
                    Severity::Info,
                    format!(
                        "{}: entered {stage} at {}%",
                        plan.title, record.after.traffic
                    ),
                    format!("stage:{stage}:{}", record.at),
                    lines,
                ))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The slot (its time) of `updates` that is due at `now` and was not yet sent (`last`: when
/// the newest one went), if any. Slots fall every `every` from T-0 + `from` (T-0 without
/// one) until T-0 + `until`; updates go while the rollout is under way (a killed
/// one too: the war room wants to hear how the rollback goes).
pub fn status_due(
    updates: &crate::plan::StatusUpdates,
    state: &RolloutState,
    last: Option<Millis>,
    now: Millis,
) -> Option<Millis> {
    if matches!(state.phase, Phase::NotStarted | Phase::Completed) {
        return None;
    }
    let t0 = state.t0?;
    // T-0 is set at the start when nobody scheduled it: "from the start" is T-0 then.
    let first = t0.checked_add(updates.from.unwrap_or(0))?;
    let every = updates.every.0.max(1);
    if now < first {
        return None;
    }
    let slot = first + (now - first) / every * every;
    if updates.until.is_some_and(|u| t0.saturating_add(u) < slot) {
        return None;
    }
    last.is_none_or(|l| l < slot).then_some(slot)
}

/// A status update as of `at`: where the rollout is, what fails, what is open, what is due.
pub fn status_event(plan: &Plan, state: &RolloutState, now: &Evaluated, at: Millis) -> Event {
    let stage = state
        .stage
        .and_then(|i| plan.stages.get(i))
        .map_or("no stage", |s| s.id.as_str());
    let mut lines = vec![format!(
        "{} at {stage}, {}% traffic",
        state.phase.to_string().to_uppercase(),
        state.traffic(plan)
    )];
    let failing: Vec<&str> = now
        .gates
        .iter()
        .filter(|g| g.guards_current && g.verdict == Verdict::Fail)
        .map(|g| g.title.as_str())
        .collect();
    let guarding = now.gates.iter().filter(|g| g.guards_current).count();
    lines.push(if failing.is_empty() {
        format!("gates: none of {guarding} failing")
    } else {
        format!("gates failing: {}", failing.join(", "))
    });
    if !state.open_alerts.is_empty() {
        let open: Vec<&str> = state.open_alerts.keys().map(String::as_str).collect();
        lines.push(format!("open, unacknowledged: {}", open.join(", ")));
    }
    let clock = crate::schedule::clock(plan, state, at);
    let overdue: Vec<String> = clock.overdue().map(|d| d.text.clone()).collect();
    if !overdue.is_empty() {
        lines.push(format!("OVERDUE: {}", overdue.join(", ")));
    }
    if let Some(next) = clock.next() {
        lines.push(format!("next due: {} ({})", next.text, next.label));
    }
    let severity = if state.phase == Phase::Killed || !failing.is_empty() {
        Severity::Warning
    } else {
        Severity::Info
    };
    Event {
        kind: EventKind::Status,
        severity,
        rollout: plan.id.clone(),
        title: format!("{}: status update", plan.title),
        lines,
        key: format!("status:{at}"),
        at,
    }
}

/// What a pager does with an event: open an incident, acknowledge it, or resolve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageAction {
    Trigger,
    Acknowledge,
    Resolve,
}

/// The pager's action for `event` and the episode it belongs to (PagerDuty's dedup key,
/// without the rollout): an alert's firing, acknowledgement and resolution share
/// `alert:<trigger>`; a kill and its acknowledgement `kill`; anything else that pages is an
/// episode of its own kind and subject (`gate:<id>`, `stale`, ...), so a repeat while it is
/// open adds to the same incident.
pub fn page(event: &Event) -> (PageAction, String) {
    // Keys are `<kind>:<subject...>:<at>`: the episode is the key without its time.
    let subject = |key: &str| -> String {
        match key.rsplit_once(':') {
            Some((head, _)) => head.to_string(),
            None => key.to_string(),
        }
    };
    match event.kind {
        EventKind::Confirmed => (PageAction::Resolve, "unconfirmed".to_string()),
        EventKind::AlertResolved => (
            PageAction::Resolve,
            format!(
                "alert:{}",
                subject(&event.key).trim_start_matches("resolved:")
            ),
        ),
        EventKind::Acknowledged => {
            let alert = subject(&event.key);
            let alert = alert.trim_start_matches("ack:");
            let episode = if alert == crate::rollout::KILL_ALERT {
                crate::rollout::KILL_ALERT.to_string()
            } else {
                format!("alert:{alert}")
            };
            (PageAction::Acknowledge, episode)
        }
        _ => (PageAction::Trigger, subject(&event.key)),
    }
}

/// The runbook's word on a gate or trigger, one line each: what to check, what to do, who
/// decides, what usually causes it, where it says more.
fn guidance(g: &crate::plan::Guidance) -> Vec<String> {
    [
        ("check", &g.check),
        ("action", &g.action),
        ("owner", &g.owner),
        ("cause", &g.cause),
        ("runbook", &g.runbook),
    ]
    .into_iter()
    .filter_map(|(name, text)| text.as_ref().map(|t| format!("{name}: {t}")))
    .collect()
}

/// Each comparison of a gate or trigger, as the board shows it: `p95(latency_ms) = 812ms > 700ms`.
fn values(comparisons: &[crate::expr::CmpTrace]) -> Vec<String> {
    comparisons
        .iter()
        .map(|c| crate::describe::observed(std::slice::from_ref(c)))
        .collect()
}

fn was_holding(g: &GateStatus) -> bool {
    g.verdict == Verdict::Pass && g.held_for.0 > 0 && g.guards_current
}

/// What changed between two evaluations that people are told of: a gate guarding the stage
/// that was holding turns failing (its hold is lost), an alert trigger that had fired stops
/// breaching, and every gate going without data at once (the events stopped).
pub fn of_evaluations(plan: &Plan, before: &Evaluated, now: &Evaluated, at: Millis) -> Vec<Event> {
    let mut events = Vec::new();
    let event = |kind, severity, title: String, key: String, lines: Vec<String>| Event {
        kind,
        severity,
        rollout: plan.id.clone(),
        title,
        lines,
        key,
        at,
    };
    // A comparison newly worse is told once, as that: its gate's failing is the same news.
    let worse = worse_events(plan, before, now, at);
    let told_worse = |id: &str| {
        worse
            .iter()
            .any(|e| e.key.starts_with(&format!("worse:{id}:")))
    };
    for gate in &now.gates {
        let Some(old) = before.gates.iter().find(|g| g.id == gate.id) else {
            continue;
        };
        if was_holding(old) && gate.verdict == Verdict::Fail && !told_worse(&gate.id) {
            let mut lines = values(&gate.comparisons);
            lines.push(format!(
                "it had held {} of {}",
                old.held_for.human(),
                gate.hold.human()
            ));
            if let Some(spec) = plan.gates.iter().find(|g| g.id == gate.id) {
                lines.extend(guidance(&spec.guidance));
            }
            events.push(event(
                EventKind::GateFailing,
                gate.severity,
                format!("{}: gate {} failing", plan.title, gate.title),
                format!("gate:{}:{at}", gate.id),
                lines,
            ));
        }
    }
    events.extend(worse);
    for trigger in &now.triggers {
        let Some(old) = before.triggers.iter().find(|t| t.id == trigger.id) else {
            continue;
        };
        let breaching = |t: &crate::gates::TriggerStatus| t.verdict == Verdict::Pass;
        if old.fired && breaching(old) && !breaching(trigger) {
            // As heavy as the alert it resolves, so it reaches every channel the alert did
            // (a pager must hear the incident is over).
            let severity = plan
                .triggers
                .iter()
                .find(|t| t.id == trigger.id)
                .map_or(Severity::Info, |t| t.severity);
            events.push(event(
                EventKind::AlertResolved,
                severity,
                format!("{}: resolved: {}", plan.title, trigger.title),
                format!("resolved:{}:{at}", trigger.id),
                values(&trigger.comparisons),
            ));
        }
    }
    let had_data = before
        .gates
        .iter()
        .any(|g| matches!(g.verdict, Verdict::Pass | Verdict::Fail));
    let none_now = !now.gates.is_empty() && now.gates.iter().all(|g| g.verdict == Verdict::NoData);
    if had_data && none_now {
        events.push(event(
            EventKind::Stale,
            Severity::Warning,
            format!("{}: no data: every gate's window is empty", plan.title),
            format!("stale:{at}"),
            vec!["the service stopped sending events, or its ingest token is failing".into()],
        ));
    }
    events
}

/// A comparison that has just concluded "worse", told whether or not its gate ever held (a
/// canary worse from its first conclusive minute must still reach people), once per
/// comparison until it stops reading worse. Noise that never concludes sends nothing.
fn worse_events(plan: &Plan, before: &Evaluated, now: &Evaluated, at: Millis) -> Vec<Event> {
    use crate::sequential::Finding;
    fn worse(comparisons: &[CmpTrace]) -> impl Iterator<Item = &CmpTrace> {
        comparisons.iter().filter(|c| {
            c.sequential
                .as_ref()
                .is_some_and(|s| s.comparison.finding == Finding::Worse)
        })
    }
    // `not_above` in a gate and `above` in a trigger over the same reads are one finding.
    let same = |a: &CmpTrace, b: &CmpTrace| {
        let side = |c: &CmpTrace| {
            c.sequential
                .as_ref()
                .map(|s| (s.comparison.worse, s.comparison.margin))
        };
        a.left == b.left && a.right == b.right && side(a) == side(b)
    };
    let was_worse: Vec<&CmpTrace> = before
        .gates
        .iter()
        .map(|g| &g.comparisons)
        .chain(before.triggers.iter().map(|t| &t.comparisons))
        .flat_map(|c| worse(c))
        .collect();
    let mut told: Vec<&CmpTrace> = Vec::new();
    let mut out = Vec::new();
    let sources = now
        .gates
        .iter()
        .map(|g| (&g.title, g.severity, &g.comparisons, g.id.as_str(), true))
        .chain(
            now.triggers
                .iter()
                .map(|t| (&t.title, t.severity, &t.comparisons, t.id.as_str(), false)),
        );
    for (title, severity, comparisons, id, is_gate) in sources {
        for c in worse(comparisons) {
            if was_worse.iter().any(|w| same(w, c)) || told.iter().any(|w| same(w, c)) {
                continue;
            }
            told.push(c);
            let mut lines = values(std::slice::from_ref(c));
            let spec_guidance = if is_gate {
                plan.gates.iter().find(|g| g.id == id).map(|g| &g.guidance)
            } else {
                plan.triggers
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| &t.guidance)
            };
            if let Some(g) = spec_guidance {
                lines.extend(guidance(g));
            }
            out.push(Event {
                kind: EventKind::Worse,
                severity,
                rollout: plan.id.clone(),
                title: format!("{}: canary worse than baseline: {title}", plan.title),
                lines,
                key: format!("worse:{id}:{at}"),
                at,
            });
        }
    }
    out
}

/// The event an open alert was told as (its key the same, so an escalation of it is one
/// episode): for escalating it.
pub fn open_alert_event(plan: &Plan, id: &str, open: &OpenAlert, now: Millis) -> Event {
    let (kind, severity, title, key) = match open.kind {
        OpenAlertKind::Kill => (
            EventKind::Kill,
            Severity::Critical,
            format!("{}: KILLED by {}, unacknowledged", plan.title, open.by),
            format!("kill:{}", open.since),
        ),
        OpenAlertKind::Alert => {
            let spec = plan.triggers.iter().find(|t| t.id == id);
            (
                EventKind::AlertFired,
                spec.map_or(Severity::Warning, |t| t.severity),
                format!(
                    "{}: ALERT {}, unacknowledged",
                    plan.title,
                    spec.map_or(id, |t| t.title.as_str())
                ),
                format!("alert:{id}:{}", open.since),
            )
        }
    };
    Event {
        kind,
        severity,
        rollout: plan.id.clone(),
        title,
        lines: vec![format!(
            "unacknowledged for {}; acknowledge it in the app or with: cutover ack {} {id}",
            crate::time::Span(now.saturating_sub(open.since)).human(),
            plan.id
        )],
        key,
        at: open.since,
    }
}

/// The escalations due at `now`: for each open alert and each channel with `escalate_after`
/// that has passed since the alert opened, (that channel's index, the alert's id). The
/// next channel hears of it; the notifier sends each once.
pub fn escalations(plan: &Plan, state: &RolloutState, now: Millis) -> Vec<(usize, String)> {
    let mut due = Vec::new();
    for (id, open) in &state.open_alerts {
        for (i, channel) in plan.channels.iter().enumerate() {
            let Some(after) = channel.escalate_after else {
                continue;
            };
            if i + 1 < plan.channels.len() && now.saturating_sub(open.since) >= after.0 {
                due.push((i, id.clone()));
            }
        }
    }
    due
}

/// Checklist items past their due time and not done, one event each (the key names the item
/// and its due time, so each is told once however often this is asked).
pub fn overdue_events(plan: &Plan, state: &RolloutState, at: Millis) -> Vec<Event> {
    let clock = crate::schedule::clock(plan, state, at);
    clock
        .overdue()
        .map(|item| {
            let due = item.due.unwrap_or(at);
            let owner = plan
                .checklists
                .iter()
                .find(|l| l.id == item.list)
                .and_then(|l| l.items.iter().find(|i| i.id == item.item))
                .and_then(|i| i.role)
                .map(|r| format!("; owner: {}", plan.role_title(&r)))
                .unwrap_or_default();
            Event {
                kind: EventKind::Overdue,
                severity: Severity::Warning,
                rollout: plan.id.clone(),
                title: format!("{}: OVERDUE {}", plan.title, item.text),
                lines: vec![format!(
                    "due {} ({} ago){owner}; tick it in {}/{} when done",
                    item.when(),
                    crate::time::Span(at.saturating_sub(due)).human(),
                    item.list,
                    item.item
                )],
                key: format!("overdue:{}/{}:{due}", item.list, item.item),
                at,
            }
        })
        .collect()
}

/// A kill the fleet has not applied in time, or has applied after all: the first pages (an
/// operator must find the instance that did not take it), the second resolves that page.
pub fn of_confirmation(plan: &Plan, due: &crate::confirm::Due, at: Millis) -> Event {
    use crate::confirm::Due;
    let (kind, severity, summary, what) = match due {
        Due::Unconfirmed(s) => (
            EventKind::Unconfirmed,
            Severity::Critical,
            s,
            format!(
                "kill NOT confirmed after {}",
                crate::confirm::lag(at - s.since)
            ),
        ),
        Due::Confirmed(s) => (
            EventKind::Confirmed,
            Severity::Critical,
            s,
            "kill confirmed by every instance".to_string(),
        ),
    };
    let mut lines = vec![summary.words(at)];
    if kind == EventKind::Unconfirmed {
        lines.push(
            "check: is the lagging instance up, and can it reach cutover? It keeps serving what it last read."
                .into(),
        );
    }
    let prefix = if kind == EventKind::Unconfirmed {
        "unconfirmed"
    } else {
        "confirmed"
    };
    Event {
        kind,
        severity,
        rollout: plan.id.clone(),
        title: format!("{}: {what}", plan.title),
        lines,
        key: format!("{prefix}:{}", summary.since),
        at,
    }
}

/// Failed attempts in a row after which an actuator "keeps failing".
pub const ACTUATOR_FAILURES: u32 = 3;

/// Actuators that keep failing to apply a state version: a kill the world has not heard of is
/// something people must know. Once per actuator and version (the key), whatever the retries.
pub fn of_actuators(plan: &Plan, statuses: &[ActuatorStatus], at: Millis) -> Vec<Event> {
    statuses
        .iter()
        .filter(|a| a.state == ApplyState::Failed && a.attempts >= ACTUATOR_FAILURES)
        .map(|a| Event {
            kind: EventKind::ActuatorFailing,
            severity: Severity::Critical,
            rollout: plan.id.clone(),
            title: format!(
                "{}: actuator {} keeps failing to apply version {}",
                plan.title, a.id, a.version
            ),
            lines: vec![format!(
                "{} attempts: {}",
                a.attempts,
                a.error.as_deref().unwrap_or("no answer")
            )],
            key: format!("actuator:{}:{}", a.id, a.version),
            at,
        })
        .collect()
}

/// The channels (by index in the plan) that take `event`.
pub fn routes(plan: &Plan, event: &Event) -> Vec<usize> {
    plan.channels
        .iter()
        .enumerate()
        .filter(|(_, c)| takes(c, event))
        .map(|(i, _)| i)
        .collect()
}

fn takes(channel: &Channel, event: &Event) -> bool {
    // Status updates go to the channels that ask for them, whatever else they take.
    if event.kind == EventKind::Status {
        return channel.status.is_some();
    }
    (channel.events.is_empty() || channel.events.contains(&event.kind))
        && weight(event.severity) >= weight(channel.min_severity)
}

/// The message text: the title, each line, and the rollout page's address when known.
pub fn text(event: &Event, page: Option<&str>) -> String {
    let mut out = event.title.clone();
    for line in &event.lines {
        out.push_str("\n• ");
        out.push_str(line);
    }
    if let Some(page) = page {
        out.push('\n');
        out.push_str(page);
    }
    out
}

#[cfg(test)]
mod tests;
