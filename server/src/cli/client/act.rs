//! `cutover progress|pause|resume|kill|start|approve|check|override|schedule|decide`: the same actions, rules
//! and refusal messages as the API and the buttons, for a terminal or a script.

use std::process::ExitCode;

use cutover_core::snapshot::Snapshot;
use serde_json::{Value, json};

use cutover_core::route::ActionRoute;

use super::{Client, ClientError, Connection};

// The arguments of start, progress, pause, resume, kill and approve; their help is on their
// `ClientCommand` variants, since one struct serves six commands.
#[derive(clap::Args)]
pub struct ActArgs {
    rollout: String,
    /// Why: goes in the audit log (required for kill, override, and resume after a kill).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

/// Check (or --uncheck) a checklist item.
///
/// Example: cutover check spiralogic preflight backups --note "snapshot 02:10"
#[derive(clap::Args)]
pub struct CheckArgs {
    rollout: String,
    list: String,
    item: String,
    /// A note kept with the check.
    #[arg(long)]
    note: Option<String>,
    #[arg(long)]
    uncheck: bool,
    #[command(flatten)]
    connection: Connection,
}

/// Override a failing gate for the current stage, with a reason.
///
/// Example: cutover override spiralogic p95-latency --reason "p95 skewed by a batch job"
#[derive(clap::Args)]
pub struct OverrideArgs {
    rollout: String,
    gate: String,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    connection: Connection,
}

/// Record a decision that changes no state (proceed, extend, investigate), with a reason; it
/// is kept with every gate's and trigger's verdict and the checklists of the moment.
///
/// Example: cutover decide hal9-shadow extend --reason "match rate dipped overnight; 12h more"
#[derive(clap::Args)]
pub struct DecideArgs {
    rollout: String,
    #[arg(value_parser = ["proceed", "extend", "investigate"])]
    decision: String,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run_decide(args: DecideArgs) -> Result<ExitCode, ClientError> {
    let act = Act::Decide {
        decision: args.decision,
    };
    send(&args.connection, &args.rollout, &act, Some(args.reason)).await
}

/// Acknowledge an open alert (a trigger's id, or `kill` for an automatic kill): it stops
/// escalating and leaves the top of the overview and the wall.
///
/// Example: cutover ack spiralogic latency-budget --reason "looking at the batch job"
#[derive(clap::Args)]
pub struct AckArgs {
    rollout: String,
    alert: String,
    #[arg(long)]
    reason: Option<String>,
    /// What it turned out to be (the report counts them): real, false-positive or expected.
    #[arg(long, value_parser = ["real", "false-positive", "expected"])]
    outcome: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run_ack(args: AckArgs) -> Result<ExitCode, ClientError> {
    let act = Act::Ack {
        alert: args.alert,
        outcome: args.outcome.map(|o| o.replace('-', "_")),
    };
    send(&args.connection, &args.rollout, &act, args.reason).await
}

/// Set an `[[adjust]]` flag within the current stage, with a reason: published at once,
/// undone by the next stage change, step back or kill.
///
/// Example: cutover adjust hal9-shadow shadow_sample_rate 0.5 --reason "halve the shadow load"
#[derive(clap::Args)]
pub struct AdjustArgs {
    rollout: String,
    flag: String,
    /// The new value: true/false, a number, or text.
    value: String,
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run_adjust(args: AdjustArgs) -> Result<ExitCode, ClientError> {
    let value = match args.value.as_str() {
        "true" => json!(true),
        "false" => json!(false),
        v => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map_or_else(|| json!(v), |n| json!(n)),
    };
    let act = Act::Adjust {
        flag: args.flag,
        value,
    };
    send(&args.connection, &args.rollout, &act, Some(args.reason)).await
}

/// Set T-0 ahead of the start: checklist phases such as T-30m become due times.
///
/// Example: cutover schedule pags-cutover --at 2026-12-01T14:00:00Z
#[derive(clap::Args)]
pub struct ScheduleArgs {
    rollout: String,
    /// T-0 as an RFC 3339 time (UTC), e.g. 2026-12-01T14:00:00Z.
    #[arg(long, conflicts_with = "in_", required_unless_present = "in_")]
    at: Option<String>,
    /// T-0 this long from now, e.g. 45m.
    #[arg(long = "in", id = "in_")]
    in_: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run_schedule(args: ScheduleArgs) -> Result<ExitCode, ClientError> {
    let t0 = match (&args.at, &args.in_) {
        (Some(at), _) => humantime::parse_rfc3339_weak(at)
            .map_err(|e| ClientError::Local(format!("--at {at}: {e}")))?
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| ClientError::Local(format!("--at {at}: before 1970")))?
            .as_millis() as cutover_core::time::Millis,
        (None, Some(span)) => {
            let span = cutover_core::time::Span::parse(span)
                .map_err(|e| ClientError::Local(format!("--in: {e}")))?;
            crate::clock::now().saturating_add(span.0)
        }
        (None, None) => return Err(ClientError::Local("give --at or --in".into())),
    };
    send(&args.connection, &args.rollout, &Act::Schedule { t0 }, None).await
}

pub(super) async fn run(act: Act, args: ActArgs) -> Result<ExitCode, ClientError> {
    send(&args.connection, &args.rollout, &act, args.reason).await
}

pub(super) async fn run_check(args: CheckArgs) -> Result<ExitCode, ClientError> {
    let act = Act::Check {
        list: args.list,
        item: args.item,
        uncheck: args.uncheck,
    };
    send(&args.connection, &args.rollout, &act, args.note).await
}

pub(super) async fn run_override(args: OverrideArgs) -> Result<ExitCode, ClientError> {
    let act = Act::Override { gate: args.gate };
    send(&args.connection, &args.rollout, &act, Some(args.reason)).await
}

async fn send(
    connection: &Connection,
    rollout: &str,
    act: &Act,
    reason: Option<String>,
) -> Result<ExitCode, ClientError> {
    let client = Client::new(connection)?;
    println!("{}", post(&client, rollout, act, reason).await?);
    Ok(ExitCode::SUCCESS)
}

/// An action on a rollout, as the command line names it.
#[derive(Debug, Clone)]
pub enum Act {
    Start,
    Progress,
    Pause,
    Resume,
    Kill,
    StepBack,
    Close,
    Approve,
    Check {
        list: String,
        item: String,
        uncheck: bool,
    },
    Override {
        gate: String,
    },
    Schedule {
        t0: cutover_core::time::Millis,
    },
    Decide {
        decision: String,
    },
    Ack {
        alert: String,
        outcome: Option<String>,
    },
    Adjust {
        flag: String,
        value: Value,
    },
}

impl Act {
    fn path(&self, rollout: &str) -> String {
        match self {
            Act::Start => ActionRoute::Start.path(rollout, &[]),
            Act::Progress => ActionRoute::Progress.path(rollout, &[]),
            Act::Pause => ActionRoute::Pause.path(rollout, &[]),
            Act::Resume => ActionRoute::Resume.path(rollout, &[]),
            Act::Kill => ActionRoute::Kill.path(rollout, &[]),
            Act::StepBack => ActionRoute::StepBack.path(rollout, &[]),
            Act::Close => ActionRoute::Close.path(rollout, &[]),
            Act::Approve => ActionRoute::Approve.path(rollout, &[]),
            Act::Check { list, item, .. } => ActionRoute::Check.path(rollout, &[list, item]),
            Act::Override { gate } => ActionRoute::Override.path(rollout, &[gate]),
            Act::Schedule { .. } => ActionRoute::Schedule.path(rollout, &[]),
            Act::Decide { .. } => ActionRoute::Decide.path(rollout, &[]),
            Act::Ack { alert, .. } => ActionRoute::Ack.path(rollout, &[alert]),
            Act::Adjust { flag, .. } => ActionRoute::Adjust.path(rollout, &[flag]),
        }
    }

    fn verb(&self) -> String {
        match self {
            Act::Start => "started".into(),
            Act::Progress => "progressed".into(),
            Act::Pause => "paused".into(),
            Act::Resume => "resumed".into(),
            Act::Kill => "KILLED".into(),
            Act::StepBack => "stepped back".into(),
            Act::Close => "closed".into(),
            Act::Approve => "approved".into(),
            Act::Check {
                list,
                item,
                uncheck,
            } => format!(
                "{} {list}/{item}",
                if *uncheck { "unchecked" } else { "checked" }
            ),
            Act::Override { gate } => format!("overrode gate {gate}"),
            Act::Schedule { t0 } => format!("T-0 set to {}", super::status::clock_time(*t0)),
            Act::Decide { decision } => format!("decided: {decision}"),
            Act::Ack { alert, .. } => format!("acknowledged {alert}"),
            Act::Adjust { flag, value } => format!("set {flag} to {value}"),
        }
    }
}

/// Sends `act` with its reason (a note, for checks); returns the line to print.
pub async fn post(
    client: &Client,
    rollout: &str,
    act: &Act,
    reason: Option<String>,
) -> Result<String, ClientError> {
    let mut body = serde_json::Map::new();
    match act {
        Act::Check { uncheck, .. } => {
            body.insert("checked".into(), json!(!uncheck));
            if let Some(note) = reason {
                body.insert("note".into(), json!(note));
            }
        }
        Act::Schedule { t0 } => {
            body.insert("t0".into(), json!(t0));
        }
        Act::Decide { decision } => {
            body.insert("decision".into(), json!(decision));
            body.insert("reason".into(), json!(reason));
        }
        Act::Adjust { value, .. } => {
            body.insert("value".into(), value.clone());
            body.insert("reason".into(), json!(reason));
        }
        Act::Ack { outcome, .. } => {
            if let Some(outcome) = outcome {
                body.insert("outcome".into(), json!(outcome));
            }
            if let Some(reason) = reason {
                body.insert("reason".into(), json!(reason));
            }
        }
        _ => {
            if let Some(reason) = reason {
                body.insert("reason".into(), json!(reason));
            }
        }
    }
    let snapshot: Snapshot = client
        .post_json(&act.path(rollout), &Value::Object(body))
        .await?;
    let state = &snapshot.state;
    let stage = state
        .stage
        .and_then(|i| snapshot.plan.stages.get(i))
        .map_or("none".to_string(), |s| s.id.clone());
    Ok(format!(
        "{rollout}: {}; now {}, stage {stage}, traffic {}%",
        act.verb(),
        state.phase,
        snapshot.traffic
    ))
}
