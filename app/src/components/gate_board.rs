//! One row per gate: what it checks, the value against the threshold, the verdict in words,
//! how long it has held and how long it still needs. Triggers below, with their state.

use cutover_core::gates::{GateStatus, TriggerStatus, Verdict};
use cutover_core::snapshot::Tick;
use leptos::prelude::*;

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "verdict pass",
        Verdict::Fail => "verdict fail",
        Verdict::NoData => "verdict nodata",
        Verdict::NotApplicable => "verdict na",
    }
}

fn gate_row(g: GateStatus) -> impl IntoView {
    let (text, class) = (g.verdict.word(), verdict_class(g.verdict));
    let held = g.held_text();
    let detail = g.observed();
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
    let class = match (t.alarming(), t.verdict) {
        (true, _) => "verdict fail",
        (false, Verdict::NoData) => "verdict nodata",
        _ => "verdict pass",
    };
    view! {
        <tr data-testid=format!("trigger-{}", t.id)>
            <td class="gate-title">{t.title.clone()}</td>
            <td><span class=class>{t.word()}</span></td>
            <td class="gate-observed">{t.observed()}</td>
            <td class="gate-held">{t.state_text()}</td>
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
