//! `cutover report ROLLOUT --format md|json`: the launch report a team pastes into its
//! post-launch review: where the rollout stands, its timeline, every decision with the
//! evidence it was taken on (each gate's value against its threshold, verdict and hold; the
//! triggers breaching; the checklists still open), the alerts, and the final gate values.

use std::fmt::Write;
use std::process::ExitCode;

use cutover_core::audit::{AuditEntry, AuditPage, Integrity};
use cutover_core::gates::{GateStatus, Verdict};
use cutover_core::rollout::Action;
use cutover_core::snapshot::Snapshot;
use serde_json::{Value, json};

use super::status::clock_time;
use super::{Client, ClientError, Connection, segment};

/// Write a rollout's launch report: timeline, decisions with their evidence, alerts, final
/// gate values.
///
/// Examples:
///   cutover report spiralogic > spiralogic-launch.md
///   cutover report spiralogic --format json | jq '.decisions[] | .action'
#[derive(clap::Args)]
pub struct ReportArgs {
    rollout: String,
    #[arg(long, value_parser = ["md", "json"], default_value = "md")]
    format: String,
    #[command(flatten)]
    connection: Connection,
}

/// The most audit entries a report reads (pages of 500).
const MAX_ENTRIES: usize = 100_000;

pub(super) async fn run(args: ReportArgs) -> Result<ExitCode, ClientError> {
    let client = Client::new(&args.connection)?;
    let id = segment(&args.rollout);
    let snapshot: Snapshot = client.get_json(&format!("/api/rollouts/{id}")).await?;
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut before: Option<i64> = None;
    let mut chain: Option<(Option<String>, Option<Integrity>)> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/rollouts/{id}/audit?limit=500&before={b}"),
            None => format!("/api/rollouts/{id}/audit?limit=500"),
        };
        let page: AuditPage = client.get_json(&path).await?;
        // The head as of the first (newest) page: what the report publishes.
        chain.get_or_insert((page.head.clone(), page.integrity.clone()));
        let full = page.entries.len() == 500;
        entries.extend(page.entries);
        match page.next_before {
            Some(next) if full && entries.len() < MAX_ENTRIES => before = Some(next),
            _ => break,
        }
    }
    entries.reverse();
    let (head, integrity) = chain.unwrap_or((None, None));
    let report = Report {
        snapshot: &snapshot,
        entries: &entries,
        head: head.as_deref(),
        integrity: integrity.as_ref(),
    };
    match args.format.as_str() {
        "json" => println!("{}", report.json()),
        _ => print!("{}", report.markdown()),
    }
    Ok(ExitCode::SUCCESS)
}

/// What a report is made of: the rollout now, and its audit log oldest first.
pub struct Report<'a> {
    pub snapshot: &'a Snapshot,
    pub entries: &'a [AuditEntry],
    /// The audit log's head when the report was made: kept with the report, it shows any
    /// later rewrite of the log.
    pub head: Option<&'a str>,
    /// The server's check of the chain.
    pub integrity: Option<&'a Integrity>,
}

/// The chain's standing in words: `holds (24 entries, head signed)` or `BROKEN: ...`.
fn chain_words(integrity: Option<&Integrity>) -> String {
    match integrity {
        None => "not checked".to_string(),
        Some(i) if i.holds => format!(
            "holds ({} entries{})",
            i.entries,
            if i.signed {
                ", head signed"
            } else {
                ", head unsigned"
            }
        ),
        Some(i) => format!("BROKEN: {}", i.problem.as_deref().unwrap_or("unknown")),
    }
}

/// Whether an entry is a decision (it moved the rollout, or a person judged it).
fn is_decision(action: &Action) -> bool {
    matches!(
        action,
        Action::Start
            | Action::Progress
            | Action::AutoProgress { .. }
            | Action::StepBack
            | Action::Kill
            | Action::Resume
            | Action::Pause
            | Action::Close
            | Action::Override { .. }
            | Action::Approve
            | Action::Decide { .. }
            | Action::Adjust { .. }
    )
}

fn what(action: &Action) -> String {
    match action {
        Action::Override { gate } => format!("override {gate}"),
        Action::Decide { decision } => format!("decide: {}", decision.as_str()),
        Action::Adjust { flag, value } => format!("adjust {flag} = {value}"),
        Action::Ack { alert, .. } => format!("ack {alert}"),
        Action::Alert { trigger } => format!("alert {trigger}"),
        Action::Check { list, item } => format!("check {list}/{item}"),
        Action::Uncheck { list, item } => format!("uncheck {list}/{item}"),
        Action::Timebox { stage } => format!("timebox of {stage}"),
        other => other.name().replace('_', " "),
    }
}

fn verdict(gate: &GateStatus) -> String {
    let word = match gate.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::NoData => "no data",
        Verdict::NotYetKnown => "not yet known",
        Verdict::NotApplicable => return "not applicable here".to_string(),
    };
    let held = if gate.cycles > 0 {
        format!("{} of {} windows", gate.cycles_passed, gate.cycles)
    } else {
        format!("held {} of {}", gate.held_for.human(), gate.hold.human())
    };
    let note = gate
        .blocking_note()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    format!("{word}, {held}, {} samples{note}", gate.samples)
}

impl Report<'_> {
    fn decisions(&self) -> impl Iterator<Item = &AuditEntry> {
        self.entries
            .iter()
            .filter(|e| is_decision(&e.record.action))
    }

    fn alerts(&self) -> impl Iterator<Item = &AuditEntry> {
        self.entries.iter().filter(|e| {
            matches!(
                e.record.action,
                Action::Alert { .. } | Action::Timebox { .. }
            ) || matches!(e.record.action, Action::Kill)
        })
    }

    /// What the acknowledged alerts turned out to be, as their acknowledgements said:
    /// (real, false positive, expected, not said); alerts never acknowledged are not counted.
    fn outcomes(&self) -> (usize, usize, usize, usize) {
        use cutover_core::rollout::AckOutcome;
        let mut n = (0, 0, 0, 0);
        for e in self.alerts() {
            if let Some(Action::Ack { outcome, .. }) =
                self.acknowledged(e).map(|a| &a.record.action)
            {
                match outcome {
                    Some(AckOutcome::Real) => n.0 += 1,
                    Some(AckOutcome::FalsePositive) => n.1 += 1,
                    Some(AckOutcome::Expected) => n.2 += 1,
                    None => n.3 += 1,
                }
            }
        }
        n
    }

    /// Who acknowledged the alert `entry` opened, and when: the first ack after it.
    fn acknowledged(&self, entry: &AuditEntry) -> Option<&AuditEntry> {
        let id = match &entry.record.action {
            Action::Alert { trigger } => trigger.as_str(),
            Action::Kill => cutover_core::rollout::KILL_ALERT,
            _ => return None,
        };
        self.entries.iter().find(|e| {
            e.seq > entry.seq
                && matches!(&e.record.action, Action::Ack { alert, .. } if alert == id)
        })
    }

    pub fn json(&self) -> Value {
        let entry = |e: &AuditEntry| {
            json!({
                "seq": e.seq,
                "at": e.record.at,
                "time": clock_time(e.record.at),
                "actor": e.record.actor.name,
                "role": e.record.actor.role.as_str(),
                "action": what(&e.record.action),
                "reason": e.record.reason,
                "phase_after": e.record.after.phase,
            })
        };
        let s = self.snapshot;
        let (real, false_positive, expected, unsaid) = self.outcomes();
        let outcomes = json!({
            "real": real,
            "false_positive": false_positive,
            "expected": expected,
            "not_said": unsaid,
        });
        json!({
            "rollout": s.plan.id,
            "title": s.plan.title,
            "phase": s.state.phase,
            "traffic": s.traffic,
            "t0": s.state.t0,
            "at": s.at,
            "timeline": self.entries.iter().map(entry).collect::<Vec<_>>(),
            "decisions": self.decisions().map(|e| {
                let mut v = entry(e);
                v["evidence"] = json!(e.evidence);
                v["triggers_breaching"] = json!(e
                    .evidence
                    .triggers_breaching()
                    .map(|t| &t.id)
                    .collect::<Vec<_>>());
                v
            }).collect::<Vec<_>>(),
            "alerts": self.alerts().map(|e| {
                let mut v = entry(e);
                v["acknowledged"] = self.acknowledged(e).map(|a| {
                    let mut ack = entry(a);
                    if let Action::Ack { outcome: Some(o), .. } = &a.record.action {
                        ack["outcome"] = json!(o);
                    }
                    ack
                }).unwrap_or(Value::Null);
                v
            }).collect::<Vec<_>>(),
            "alert_outcomes": outcomes,
            "final_gates": s.gates,
            "audit_head": self.head,
            "audit_chain": self.integrity,
        })
    }

    pub fn markdown(&self) -> String {
        let s = self.snapshot;
        let mut out = String::new();
        let _ = writeln!(out, "# Launch report: {} ({})\n", s.plan.title, s.plan.id);
        let stage = s
            .state
            .stage
            .and_then(|i| s.plan.stages.get(i))
            .map_or("no stage".to_string(), |st| st.title.clone());
        let _ = writeln!(
            out,
            "- As of {}: **{}**, {stage}, {}% traffic",
            clock_time(s.at),
            s.state.phase,
            s.traffic
        );
        if let Some(t0) = s.state.t0 {
            let _ = writeln!(out, "- T-0: {}", clock_time(t0));
        }
        let _ = writeln!(out, "- {} audit entries", self.entries.len());
        let _ = writeln!(
            out,
            "- Audit log head: `{}`; the chain {}\n",
            self.head.unwrap_or("none"),
            chain_words(self.integrity)
        );

        let _ = writeln!(out, "## Timeline\n");
        let _ = writeln!(out, "| time (UTC) | who | action | reason |");
        let _ = writeln!(out, "|---|---|---|---|");
        for e in self.entries {
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} |",
                clock_time(e.record.at),
                cell(&e.record.actor.name),
                e.record.actor.role,
                cell(&what(&e.record.action)),
                cell(e.record.reason.as_deref().unwrap_or(""))
            );
        }

        let _ = writeln!(out, "\n## Decisions and their evidence\n");
        for e in self.decisions() {
            let _ = writeln!(
                out,
                "### {} · {} by {} ({})\n",
                clock_time(e.record.at),
                what(&e.record.action),
                e.record.actor.name,
                e.record.actor.role
            );
            if let Some(reason) = &e.record.reason {
                let _ = writeln!(out, "Reason: {reason}\n");
            }
            let gates = e.evidence.gates();
            if !gates.is_empty() {
                let _ = writeln!(out, "| gate | values | verdict |");
                let _ = writeln!(out, "|---|---|---|");
                for g in gates {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} |",
                        cell(&g.id),
                        cell(&cutover_core::describe::observed(&g.comparisons)),
                        verdict(g)
                    );
                }
                let _ = writeln!(out);
            }
            let (breaching, rest): (Vec<_>, Vec<_>) =
                e.evidence.triggers().iter().partition(|t| t.alarming());
            let named = |ts: Vec<&cutover_core::gates::TriggerStatus>| {
                ts.iter()
                    .map(|t| format!("{} ({})", t.id, t.word().to_lowercase()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !breaching.is_empty() {
                let _ = writeln!(out, "Triggers breaching: {}\n", named(breaching));
            }
            if !rest.is_empty() {
                let _ = writeln!(out, "Triggers not breaching: {}\n", named(rest));
            }
            let open: Vec<String> = e
                .evidence
                .checklists_open()
                .map(|(id, n)| format!("{id} ({n} open)"))
                .collect();
            if !open.is_empty() {
                let _ = writeln!(out, "Checklists open: {}\n", open.join(", "));
            }
        }

        let _ = writeln!(out, "## Alerts\n");
        let mut any = false;
        for e in self.alerts() {
            any = true;
            let ack = match self.acknowledged(e) {
                Some(a) => format!(
                    " (acknowledged by {} ({}) after {}{})",
                    a.record.actor.name,
                    a.record.actor.role,
                    cutover_core::time::Span(a.record.at - e.record.at).human(),
                    match &a.record.action {
                        Action::Ack {
                            outcome: Some(o), ..
                        } => format!(": {}", o.as_str()),
                        _ => String::new(),
                    }
                ),
                None if matches!(e.record.action, Action::Timebox { .. }) => String::new(),
                None => " (never acknowledged)".to_string(),
            };
            let _ = writeln!(
                out,
                "- {} {}: {}{ack}",
                clock_time(e.record.at),
                what(&e.record.action),
                e.record.reason.as_deref().unwrap_or("")
            );
        }
        if !any {
            let _ = writeln!(out, "None.");
        } else {
            let (real, false_positive, expected, unsaid) = self.outcomes();
            let _ = writeln!(
                out,
                "\nAcknowledged as: {real} real, {false_positive} false positive, {expected} expected, {unsaid} not said."
            );
        }

        let _ = writeln!(out, "\n## Final gate values\n");
        let _ = writeln!(out, "| gate | values | verdict |");
        let _ = writeln!(out, "|---|---|---|");
        for g in &s.gates {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                cell(&g.id),
                cell(&cutover_core::describe::observed(&g.comparisons)),
                verdict(g)
            );
        }
        out
    }
}

/// Text safe in a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
