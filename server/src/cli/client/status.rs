//! `cutover status`: where every rollout stands, as one compact line each or as the full view
//! of one rollout (stage, state, every gate with value, threshold and hold, triggers,
//! checklists, what blocks the next step). Colour only on a terminal; words always, so the
//! meaning never rests on colour.

use std::fmt::Write;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use cutover_core::gates::Verdict;
use cutover_core::rollout::Phase;
use cutover_core::snapshot::{Health, Snapshot, Summary};
use cutover_core::time::Span;

use super::{Client, ClientError, Connection, every, segment};

/// Where every rollout stands: one line each, or the full view of one.
///
/// Examples:
///   cutover status --compact --once
///   cutover status spiralogic --watch --interval 5
///   cutover status spiralogic --json | jq '.gates[] | {id, verdict}'
#[derive(clap::Args)]
pub struct StatusArgs {
    /// One rollout (all when omitted; the full view needs one).
    rollout: Option<String>,
    /// One line per rollout: stage, traffic, health, gates passing, headline numbers.
    #[arg(long)]
    compact: bool,
    /// Print once and exit (the default).
    #[arg(long, conflicts_with = "watch")]
    once: bool,
    /// Redraw every --interval seconds until interrupted.
    #[arg(long)]
    watch: bool,
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    interval: u64,
    /// Machine-readable: the snapshot (full view) or the summaries (compact).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run(args: StatusArgs) -> Result<ExitCode, ClientError> {
    // `--once` is what happens without `--watch`; the flag exists to say so in a script.
    let StatusArgs {
        rollout,
        compact,
        once: _,
        watch,
        interval,
        json,
        connection,
    } = args;
    let client = Client::new(&connection)?;
    let format = Format { compact, json };
    show(&client, rollout.as_deref(), format, every(watch, interval)).await?;
    Ok(ExitCode::SUCCESS)
}

/// ANSI colour, or nothing when the output is not a terminal.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    pub fn for_stdout() -> Paint {
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn health(self, h: Health) -> String {
        let (word, code) = match h {
            Health::Healthy => ("HEALTHY", "32;1"),
            Health::Overdue => ("OVERDUE", "33;1"),
            Health::Degraded => ("DEGRADED", "33;1"),
            Health::Critical => ("CRITICAL", "31;1"),
            Health::Killed => ("KILLED", "35;1"),
        };
        self.wrap(code, word)
    }

    fn verdict(self, v: Verdict) -> String {
        let code = match v {
            Verdict::Pass => "32",
            Verdict::Fail => "31;1",
            Verdict::NoData | Verdict::NotYetKnown => "33",
            Verdict::NotApplicable => "2",
        };
        self.wrap(code, &format!("{:<7}", v.word()))
    }
}

/// `spiralogic canary 10% HEALTHY gates 6/7 p95=612ms error=0.4% cache_hit=47%`
pub fn compact_line(s: &Summary, paint: Paint) -> String {
    let stage = match s.phase {
        Phase::NotStarted => "not-started".to_string(),
        _ => s.stage_id.clone().unwrap_or_else(|| "-".into()),
    };
    let mut line = format!("{} {stage} {}% {}", s.id, s.traffic, paint.health(s.health));
    match s.phase {
        Phase::Paused => line.push_str(" PAUSED"),
        Phase::Hypercare => line.push_str(" HYPERCARE"),
        Phase::Completed => line.push_str(" COMPLETED"),
        _ => {}
    }
    let _ = write!(line, " gates {}/{}", s.gates_passing, s.gates_total);
    for k in &s.kpis {
        let _ = write!(line, " {}={}", k.label, k.display_value());
    }
    line
}

fn ago(at: i64, now: i64) -> String {
    format!("{} ago", Span((now - at).max(0)).human())
}

/// The whole picture of one rollout, as an on-call engineer reads it in a terminal.
pub fn full_view(snapshot: &Snapshot, summary: Option<&Summary>, paint: Paint) -> String {
    let plan = &snapshot.plan;
    let state = &snapshot.state;
    let at = snapshot.at;
    let own = snapshot.summary();
    let health = summary.unwrap_or(&own);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({})  {}{}",
        plan.title,
        plan.id,
        paint.health(health.health),
        health
            .health_reason
            .as_ref()
            .map(|why| format!(": {why}"))
            .unwrap_or_default()
    );
    let stage = state.stage.and_then(|i| plan.stages.get(i));
    let stage_text = stage.map_or("none".to_string(), |s| format!("{} ({})", s.id, s.title));
    let in_stage = state
        .stage_entered_at
        .map(|t| format!(", in stage {}", Span(at - t).human()))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "state     {}, stage {stage_text}, traffic {}%{in_stage}",
        state.phase, snapshot.traffic
    );
    clock_lines(&mut out, snapshot, paint);
    let stages: Vec<String> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if Some(i) == state.stage {
                format!("[{} {}%]", s.id, s.traffic)
            } else {
                format!("{} {}%", s.id, s.traffic)
            }
        })
        .collect();
    let _ = writeln!(out, "stages    {}", stages.join(" -> "));
    for (word, mark) in [("killed", &state.killed), ("paused", &state.paused)] {
        if let Some(m) = mark {
            let _ = writeln!(
                out,
                "{word:<9} by {} ({}) {}: {}",
                m.by.name,
                m.by.role,
                ago(m.at, at),
                m.reason.as_deref().unwrap_or("no reason given")
            );
        }
    }
    let flags = cutover_core::actuate::in_force(&snapshot.plan, state);
    for (i, f) in flags.iter().enumerate() {
        let head = if i == 0 { "flags" } else { "" };
        let _ = writeln!(
            out,
            "{head:<9} {}={} ({})",
            f.key,
            f.value,
            f.source.words()
        );
    }
    if let Some(c) = &snapshot.confirmation {
        let word = if c.complete() { "applied" } else { "APPLIED" };
        let _ = writeln!(out, "{word:<9} {}", c.words(snapshot.at));
    }
    let blockers = snapshot.blockers();
    if blockers.is_empty() {
        let next = match state.phase {
            Phase::NotStarted => "ready to start",
            _ => "ready to progress",
        };
        let _ = writeln!(out, "next      {next}");
    } else {
        for (i, b) in blockers.iter().enumerate() {
            let head = if i == 0 { "blocked" } else { "" };
            let _ = writeln!(out, "{head:<9} {b}");
        }
    }
    if let Some(s) = summary.filter(|s| !s.kpis.is_empty()) {
        let kpis: Vec<String> = s
            .kpis
            .iter()
            .map(|k| format!("{}={}", k.label, k.display_value()))
            .collect();
        let _ = writeln!(out, "now       {}", kpis.join(" "));
    }

    let applicable = snapshot
        .gates
        .iter()
        .filter(|g| g.verdict != Verdict::NotApplicable);
    let passing = applicable
        .clone()
        .filter(|g| g.verdict == Verdict::Pass)
        .count();
    let _ = writeln!(
        out,
        "\ngates     {passing} of {} passing",
        applicable.count()
    );
    let width = snapshot.gates.iter().map(|g| g.id.len()).max().unwrap_or(0);
    for g in &snapshot.gates {
        let guard = if g.guards_current { "*" } else { " " };
        let overridden = state
            .overrides
            .get(&g.id)
            .map(|m| {
                format!(
                    "  (overridden by {}: {})",
                    m.by.name,
                    m.reason.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default();
        let note = g
            .blocking_note()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            " {guard}{} {:<width$}  {}  [{}]{overridden}{note}",
            paint.verdict(g.verdict),
            g.id,
            g.observed(),
            g.held_text(),
        );
        if let Some(a) = plan.assumption(&g.id) {
            let _ = writeln!(out, "   {:<width$}  the plan's assumption: {a}", "");
        }
    }
    if !snapshot.triggers.is_empty() {
        let _ = writeln!(out, "\ntriggers");
        let width = snapshot
            .triggers
            .iter()
            .map(|t| t.id.len())
            .max()
            .unwrap_or(0);
        for t in &snapshot.triggers {
            let word = format!("{:<9}", t.word());
            let word = if t.alarming() {
                paint.wrap("31;1", &word)
            } else {
                word
            };
            let _ = writeln!(
                out,
                "  {word} {:<width$}  {}  [{}]",
                t.id,
                t.observed(),
                t.state_text()
            );
            if let Some(a) = plan.assumption(&t.id) {
                let _ = writeln!(
                    out,
                    "  {:<9} {:<width$}  the plan's assumption: {a}",
                    "", ""
                );
            }
        }
    }
    if !plan.checklists.is_empty() {
        let _ = writeln!(out, "\nchecklists");
        for list in &plan.checklists {
            let done = list
                .items
                .iter()
                .filter(|i| state.item_done(list, i, 0))
                .count();
            let phase = list.phase.as_deref().unwrap_or("");
            let _ = writeln!(
                out,
                "  {phase:<6} {:<24} {done}/{} checked",
                list.id,
                list.items.len()
            );
        }
    }
    out
}

/// T-0, what is overdue, what is due next and a timebox passed: the war room's clock.
fn clock_lines(out: &mut String, snapshot: &Snapshot, paint: Paint) {
    let at = snapshot.at;
    let clock = cutover_core::schedule::clock(&snapshot.plan, &snapshot.state, at);
    if let (Some(t0), Some(label)) = (clock.t0, clock.label(at)) {
        let _ = writeln!(out, "clock     {label} (T-0 {})", clock_time(t0));
    }
    for (id, open) in &snapshot.state.open_alerts {
        let _ = writeln!(
            out,
            "{} {id} by {}, opened {}: cutover ack {} {id}",
            paint.wrap("31;1", "OPEN ALERT"),
            open.by,
            ago(open.since, at),
            snapshot.plan.id
        );
    }
    for item in clock.overdue() {
        let late = item.due.map(|d| ago(d, at)).unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {}/{} \"{}\" was due {}, {late}",
            paint.wrap("31;1", "OVERDUE  "),
            item.list,
            item.item,
            item.text,
            item.label
        );
    }
    if let Some(next) = clock.next() {
        let when = next
            .due
            .map(|d| format!(" (in {})", Span((d - at).max(0)).human()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "next due  {}/{} \"{}\" {}{when}",
            next.list,
            next.item,
            next.text,
            next.when()
        );
    }
    if let Some(over) = &clock.overrun {
        let _ = writeln!(out, "{} {}", paint.wrap("31;1", "TIMEBOX  "), over.reason());
    }
}

/// A wall time as people write it in a war room: `2026-12-01T14:00:00Z`.
pub fn clock_time(at: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// How `cutover status` prints.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub compact: bool,
    pub json: bool,
}

/// One rendering of the current status.
pub async fn render(
    client: &Client,
    rollout: Option<&str>,
    format: Format,
    paint: Paint,
) -> Result<String, ClientError> {
    let mut summaries: Vec<Summary> = client.get_json("/api/rollouts").await?;
    if let Some(id) = rollout {
        summaries.retain(|s| s.id == id);
    }
    match (rollout, format.compact) {
        (Some(id), false) => {
            let snapshot: Snapshot = client
                .get_json(&format!("/api/rollouts/{}", segment(id)))
                .await?;
            if format.json {
                return to_json(&snapshot);
            }
            Ok(full_view(&snapshot, summaries.first(), paint))
        }
        _ => {
            if let Some(id) = rollout.filter(|_| summaries.is_empty()) {
                return Err(ClientError::Refused(format!("no rollout \"{id}\"")));
            }
            if format.json {
                return to_json(&summaries);
            }
            let mut out = String::new();
            for s in &summaries {
                out.push_str(&compact_line(s, paint));
                out.push('\n');
            }
            Ok(out)
        }
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, ClientError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| ClientError::Local(e.to_string()))
}

/// `--once` prints and returns; `--watch` redraws every `interval` until interrupted, and keeps
/// trying (showing the error) while the server is unreachable: a war-room terminal stays up.
pub async fn show(
    client: &Client,
    rollout: Option<&str>,
    format: Format,
    watch: Option<Duration>,
) -> Result<(), ClientError> {
    let paint = Paint::for_stdout();
    let Some(interval) = watch else {
        print!("{}", render(client, rollout, format, paint).await?);
        return Ok(());
    };
    loop {
        let text = match render(client, rollout, format, paint).await {
            Ok(text) => text,
            Err(e @ ClientError::Auth(_)) | Err(e @ ClientError::Refused(_)) => return Err(e),
            Err(e) => format!("{}\n", paint.wrap("31;1", &format!("error: {e}"))),
        };
        if paint.0 {
            // Home and clear: redraw in place.
            print!("\x1b[H\x1b[2J{text}");
        } else {
            println!("{text}");
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use cutover_core::rollout::Phase;
    use cutover_core::snapshot::Kpi;

    use super::*;

    fn summary() -> Summary {
        Summary {
            id: "spiralogic".into(),
            title: "Spiralogic".into(),
            phase: Phase::Running,
            stage: Some("Canary 10%".into()),
            stage_id: Some("canary".into()),
            traffic: 10.0,
            gates_passing: 6,
            gates_total: 7,
            health: Health::Degraded,
            stage_entered_at: Some(0),
            kpis: vec![
                Kpi {
                    label: "p95".into(),
                    value: Some(611.6),
                    unit: cutover_core::unit::Unit::Ms,
                },
                Kpi {
                    label: "error".into(),
                    value: Some(0.004),
                    unit: cutover_core::unit::Unit::Ratio,
                },
            ],
            stage_index: Some(0),
            stages: 3,
            blocker: None,
            health_reason: None,
            overdue: 0,
            trend: None,
            open_alerts: vec![],
            open_since: None,
            at: 1000,
        }
    }

    #[test]
    fn compact_line_has_stage_traffic_health_gates_and_kpis() {
        assert_eq!(
            compact_line(&summary(), Paint(false)),
            "spiralogic canary 10% DEGRADED gates 6/7 p95=612ms error=0.4%"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(compact_line(&summary(), Paint(true)).contains("\x1b[33;1mDEGRADED\x1b[0m"));
        assert!(!compact_line(&summary(), Paint(false)).contains('\x1b'));
    }
}
