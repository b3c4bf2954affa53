//! `cutover gate-check`: a pass/fail for CI. Exit 0 only when every gate guarding the stage
//! holds (or passes, with `--require passing`); otherwise each failing gate is printed and the
//! exit code is 1. A killed rollout never passes.

use std::process::ExitCode;

use cutover_core::gates::Verdict;
use cutover_core::rollout::Phase;
use cutover_core::snapshot::Snapshot;

use super::{Client, ClientError, Connection, segment};

/// For CI: exit 0 only when the gates guarding a stage hold; print each failing gate.
///
/// Exit codes: 0 the gates hold, 1 they do not (or the rollout is killed), 2 usage,
/// 3 server unreachable or token refused.
///
/// Example: cutover gate-check spiralogic --stage canary --require held
#[derive(clap::Args)]
pub struct GateCheckArgs {
    rollout: String,
    /// The stage whose gates to check (default: the current one).
    #[arg(long)]
    stage: Option<String>,
    #[arg(long, value_enum, default_value_t = Require::Held)]
    require: Require,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run(args: GateCheckArgs) -> Result<ExitCode, ClientError> {
    let client = Client::new(&args.connection)?;
    let snapshot = client
        .get_json(&format!("/api/rollouts/{}", segment(&args.rollout)))
        .await?;
    let outcome =
        check(&snapshot, args.stage.as_deref(), args.require).map_err(ClientError::Refused)?;
    for line in &outcome.lines {
        println!("{line}");
    }
    Ok(if outcome.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What counts as good enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Require {
    /// Passing continuously for the gate's whole hold: what progress needs.
    Held,
    /// Passing now.
    Passing,
}

/// The verdict for CI: lines to print, and whether it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub passed: bool,
    pub lines: Vec<String>,
}

/// Checks the gates that guard `stage` (default: the current stage, or the first before the
/// rollout starts). Err when the stage does not exist.
pub fn check(
    snapshot: &Snapshot,
    stage: Option<&str>,
    require: Require,
) -> Result<Outcome, String> {
    let plan = &snapshot.plan;
    let state = &snapshot.state;
    let stage = match stage {
        Some(id) => plan.stage(id).ok_or_else(|| {
            let known: Vec<&str> = plan.stages.iter().map(|s| s.id.as_str()).collect();
            format!(
                "rollout {} has no stage \"{id}\" (stages: {})",
                plan.id,
                known.join(", ")
            )
        })?,
        None => state
            .stage
            .and_then(|i| plan.stages.get(i))
            .or(plan.stages.first())
            .ok_or_else(|| format!("rollout {} has no stages", plan.id))?,
    };
    let mut lines = Vec::new();
    let mut passed = true;
    if state.phase == Phase::Killed {
        passed = false;
        let why = state
            .killed
            .as_ref()
            .and_then(|m| m.reason.clone())
            .unwrap_or_default();
        lines.push(format!("FAIL rollout {} is killed: {why}", plan.id));
    }
    let guarding: Vec<_> = snapshot
        .gates
        .iter()
        .filter(|g| {
            plan.gates
                .iter()
                .any(|pg| pg.id == g.id && pg.stages.contains(&stage.id))
        })
        .collect();
    if guarding.is_empty() {
        lines.push(format!("no gates guard stage {}", stage.id));
    }
    for g in guarding {
        let overridden = state.overrides.get(&g.id);
        let good = match require {
            _ if g.verdict == Verdict::NotApplicable => true,
            _ if overridden.is_some() => true,
            Require::Held => g.verdict == Verdict::Pass && g.held(),
            Require::Passing => g.verdict == Verdict::Pass,
        };
        passed &= good;
        let word = if good { "ok  " } else { "FAIL" };
        let note = match overridden {
            Some(m) => format!(
                " (overridden by {}: {})",
                m.by.name,
                m.reason.as_deref().unwrap_or("")
            ),
            None => String::new(),
        };
        let state = if g.verdict == Verdict::Pass && !g.held() {
            "PASS, not held yet"
        } else {
            g.verdict.word()
        };
        lines.push(format!(
            "{word} {} ({state}): {} [{}]{note}",
            g.id,
            g.observed(),
            g.held_text()
        ));
    }
    let verb = match require {
        Require::Held => "hold",
        Require::Passing => "pass",
    };
    lines.push(if passed {
        format!("gates guarding {} {verb}", stage.id)
    } else {
        format!("gates guarding {} do not {verb}", stage.id)
    });
    Ok(Outcome { passed, lines })
}
