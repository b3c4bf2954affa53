//! One row per gate: what it checks, the value against the threshold, the verdict in words,
//! how long it has held and how long it still needs. Triggers below, with their state.

use cutover_core::expr::CmpTrace;
use cutover_core::gates::{GateStatus, TriggerStatus, Verdict};
use cutover_core::snapshot::Tick;
use cutover_core::time::Span;
use leptos::prelude::*;

fn verdict_text(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Pass => ("PASS", "verdict pass"),
        Verdict::Fail => ("FAIL", "verdict fail"),
        Verdict::NoData => ("NO DATA", "verdict nodata"),
        Verdict::NotApplicable => ("N/A", "verdict na"),
    }
}

fn number(v: Option<f64>) -> String {
    match v {
        None => "no data".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn observed(comparisons: &[CmpTrace]) -> String {
    comparisons
        .iter()
        .map(|c| {
            format!(
                "{} = {} {} {}",
                c.left,
                number(c.left_value),
                c.op,
                number(c.right_value)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn gate_row(g: GateStatus) -> impl IntoView {
    let (text, class) = verdict_text(g.verdict);
    let held = if g.held() {
        format!("held {}", g.held_for.human())
    } else {
        format!(
            "held {} of {}, needs {}",
            g.held_for.human(),
            g.hold.human(),
            g.needs.human()
        )
    };
    let detail = g.reason.clone().unwrap_or_else(|| observed(&g.comparisons));
    view! {
        <tr data-testid=format!("gate-{}", g.id) class:guarding=g.guards_current>
            <td class="gate-title">{g.title.clone()}</td>
            <td><span class=class>{text}</span></td>
            <td class="gate-observed">{detail}</td>
            <td class="gate-held">{held}</td>
        </tr>
    }
}

fn trigger_row(t: TriggerStatus) -> impl IntoView {
    let (text, class) = match (t.fired, t.verdict) {
        (true, _) => ("FIRED", "verdict fail"),
        (false, Verdict::Pass) => ("BREACHING", "verdict fail"),
        (false, Verdict::NoData) => ("NO DATA", "verdict nodata"),
        _ => ("OK", "verdict pass"),
    };
    let state = if !t.armed {
        "not armed in this stage".to_string()
    } else if t.true_for > Span(0) {
        format!("true for {} of {}", t.true_for.human(), t.for_.human())
    } else {
        format!("{:?} after {}", t.action, t.for_.human()).to_lowercase()
    };
    view! {
        <tr data-testid=format!("trigger-{}", t.id)>
            <td class="gate-title">{t.title.clone()}</td>
            <td><span class=class>{text}</span></td>
            <td class="gate-observed">{t.reason.clone().unwrap_or_else(|| observed(&t.comparisons))}</td>
            <td class="gate-held">{state}</td>
        </tr>
    }
}

/// The gate board and the rollback triggers, from the server's latest evaluation.
#[component]
pub fn GateBoard(
    /// The latest tick.
    #[prop(into)]
    tick: Signal<Option<Tick>>,
) -> impl IntoView {
    let gates = Memo::new(move |_| tick.get().map(|t| t.gates).unwrap_or_default());
    let triggers = Memo::new(move |_| tick.get().map(|t| t.triggers).unwrap_or_default());
    let passing = move || {
        let g = gates.get();
        format!(
            "{} of {} gates passing",
            g.iter().filter(|g| g.verdict == Verdict::Pass).count(),
            g.len()
        )
    };
    view! {
        <section class="panel">
            <h2>"Promotion gates " <span data-testid="gates-passing">{passing}</span></h2>
            <table class="board" data-testid="gate-board">
                <tbody>{move || gates.get().into_iter().map(gate_row).collect::<Vec<_>>()}</tbody>
            </table>
            <h2>"Rollback triggers"</h2>
            <table class="board" data-testid="trigger-board">
                <tbody>{move || triggers.get().into_iter().map(trigger_row).collect::<Vec<_>>()}</tbody>
            </table>
        </section>
    }
}
