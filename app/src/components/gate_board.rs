//! One row per gate: what it checks, the value against the threshold, the verdict in words,
//! how long it has held and how long it still needs, and a sparkline of what it judges over
//! the live range. Triggers below, with their state.

use cutover_core::gates::{GateStatus, TriggerStatus, Verdict};
use cutover_core::plan::Guidance;

use crate::components::guidance::guidance_row;
use cutover_core::series::Series;
use cutover_core::snapshot::{Snapshot, Tick};
use leptos::prelude::*;

const SPARK_W: f64 = 120.0;
/// The most gate rows the wall shows; the rest are counted (at 18px expressions, five fill
/// the column at 1080p beside the triggers, whatever their reasons wrap to).
const WALL_ROWS: usize = 5;
const SPARK_H: f64 = 24.0;

/// The series as SVG polylines (one per run of values, so gaps stay gaps) and the y of the
/// limit, scaled so both fit.
fn spark_geometry(series: &Series, limit: Option<f64>) -> (Vec<String>, Option<f64>) {
    let values = series.points.iter().filter_map(|p| p.v).chain(limit);
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (Vec::new(), None);
    }
    let span = if hi - lo > f64::EPSILON { hi - lo } else { 1.0 };
    let y = |v: f64| SPARK_H - 2.0 - (v - lo) / span * (SPARK_H - 4.0);
    let last = series.points.len().saturating_sub(1).max(1) as f64;
    let mut runs = vec![String::new()];
    for (i, p) in series.points.iter().enumerate() {
        match p.v {
            Some(v) => {
                let run = runs.last_mut().expect("never empty");
                run.push_str(&format!("{:.1},{:.1} ", i as f64 / last * SPARK_W, y(v)));
            }
            None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(String::new()),
            None => {}
        }
    }
    runs.retain(|r| !r.is_empty());
    (runs, limit.map(y))
}

fn sparkline(
    gate: &GateStatus,
    series: Option<Series>,
    limit: Option<f64>,
) -> impl IntoView + use<> {
    let (runs, limit_y) = series
        .as_ref()
        .map(|s| spark_geometry(s, limit))
        .unwrap_or_default();
    let label = format!("{} over the last 15 minutes", gate.title);
    view! {
        <svg
            class="spark"
            viewBox=format!("0 0 {SPARK_W} {SPARK_H}")
            width=SPARK_W
            height=SPARK_H
            role="img"
            aria-label=label
            data-testid=format!("spark-{}", gate.id)
        >
            {limit_y.map(|y| view! {
                <line class="spark-limit" x1="0" x2=SPARK_W y1=y y2=y></line>
            })}
            {runs.into_iter().map(|points| view! {
                <polyline class="spark-line" points=points></polyline>
            }).collect::<Vec<_>>()}
        </svg>
    }
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "verdict pass",
        Verdict::Fail => "verdict fail",
        Verdict::NoData => "verdict nodata",
        Verdict::NotYetKnown => "verdict unknown",
        Verdict::NotApplicable => "verdict na",
    }
}

/// What the plan assumes where its runbook gives no number, said beside the title: a war
/// room must know which limits are the runbook's and which are the plan author's.
fn assumption_note(id: &str, assumption: Option<String>) -> impl IntoView + use<> {
    assumption.map(|a| {
        view! {
            <span class="assumption" data-testid=format!("assumption-{id}")>
                <span class="assumption-label">"the plan's assumption:"</span>" "{a}
            </span>
        }
    })
}

fn gate_row(
    g: GateStatus,
    spark: Option<(Series, Option<f64>)>,
    guidance: Option<Guidance>,
    assumption: Option<String>,
) -> impl IntoView {
    let (text, class) = (g.verdict.word(), verdict_class(g.verdict));
    let held = g.held_text();
    let note = g.blocking_note();
    let detail = g.observed();
    let (series, limit) = spark.map_or((None, None), |(s, l)| (Some(s), l));
    let spark = sparkline(&g, series, limit);
    view! {
        <tr data-testid=format!("gate-{}", g.id) class:guarding=g.guards_current>
            <td class="gate-title">{g.title.clone()}{note.map(|n| view! { <span class="gate-note" data-testid=format!("gate-note-{}", g.id)>" · " {n}</span> })}{assumption_note(&g.id, assumption)}</td>
            <td><span class=class>{text}</span></td>
            <td class="gate-observed">{detail}</td>
            <td class="gate-spark">{spark}</td>
            <td class="gate-held">{held}</td>
        </tr>
        {guidance.map(|guide| guidance_row(&g.id, &guide, 5))}
    }
}

fn trigger_row(
    t: TriggerStatus,
    guidance: Option<Guidance>,
    assumption: Option<String>,
) -> impl IntoView {
    let class = match (t.alarming(), t.verdict) {
        (true, _) => "verdict fail",
        // No data, or over its line where it is not armed: neither fine nor an alarm.
        (false, Verdict::NoData | Verdict::Pass) => "verdict nodata",
        (false, Verdict::NotYetKnown) => "verdict unknown",
        _ => "verdict pass",
    };
    view! {
        <tr data-testid=format!("trigger-{}", t.id)>
            <td class="gate-title">{t.title.clone()}{assumption_note(&t.id, assumption)}</td>
            <td><span class=class>{t.word()}</span></td>
            <td class="gate-observed">{t.observed()}</td>
            <td class="gate-held">{t.state_text()}</td>
        </tr>
        {guidance.map(|guide| guidance_row(&t.id, &guide, 4))}
    }
}

/// The gate board and the rollback triggers, from the server's latest evaluation.
#[component]
pub fn GateBoard(
    /// The rollout, for which series each gate's sparkline draws.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
    /// The latest tick.
    #[prop(into)]
    tick: Signal<Option<Tick>>,
    /// Whether to show the runbook's guidance under what fails (the wall shows action lines
    /// instead).
    guidance: bool,
    /// The wall: one screen whatever the number of gates, so gates that have held and quiet
    /// triggers become a count with their shapes, what needs eyes comes first, and past
    /// `WALL_ROWS` rows the rest is a count too.
    #[prop(optional)]
    wall: bool,
) -> impl IntoView {
    // The guidance for each gate and trigger that needs it now, by id.
    let guides = Memo::new(move |_| {
        let (Some(s), Some(t)) = (snapshot.get(), tick.get()) else {
            return std::collections::BTreeMap::new();
        };
        cutover_core::describe::guidance_now(&s.plan, &t.gates, &t.triggers)
            .into_iter()
            .map(|a| (a.id.to_string(), a.guidance.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    // The wall has no room for the sentence; the page and the phone say it.
    let assumed = move |id: &str| {
        (!wall)
            .then(|| {
                snapshot.with_untracked(|s| {
                    s.as_ref()
                        .and_then(|s| s.plan.assumption(id).map(str::to_string))
                })
            })
            .flatten()
    };
    let guide = move |id: &str| {
        guidance
            .then(|| guides.with(|m| m.get(id).cloned()))
            .flatten()
    };
    let sparks = Memo::new(move |_| {
        snapshot.with(|s| {
            s.as_ref()
                .map(|s| cutover_core::chart::sparklines(&s.plan))
                .unwrap_or_default()
        })
    });
    // Each gate with the live series its sparkline draws.
    let rows = Memo::new(move |_| {
        sparks.with(|sparks| {
            tick.with(|t| {
                t.as_ref()
                    .map(|t| {
                        t.gates
                            .iter()
                            .map(|g| {
                                let spark = sparks.get(&g.id).and_then(|(id, limit)| {
                                    let s = t.frame.series.iter().find(|s| &s.id == id)?;
                                    Some((s.clone(), *limit))
                                });
                                (g.clone(), spark)
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
        })
    });
    let all_triggers = Memo::new(move |_| tick.get().map(|t| t.triggers).unwrap_or_default());
    // On the wall: gates that need eyes (failing, no data, still holding) first, in that
    // order; held gates only counted.
    let shown_rows = Memo::new(move |_| {
        let mut rows = rows.get();
        if wall {
            rows.retain(|(g, _)| !(g.held() && g.verdict == Verdict::Pass));
            rows.sort_by_key(|(g, _)| match g.verdict {
                Verdict::Fail => 0,
                Verdict::NoData => 1,
                Verdict::NotYetKnown => 2,
                _ => 3,
            });
            rows.truncate(WALL_ROWS);
        }
        rows
    });
    let triggers = Memo::new(move |_| {
        let mut list = all_triggers.get();
        if wall {
            list.retain(|t| t.alarming() || t.fired || t.verdict != Verdict::Fail);
            list.truncate(3);
        }
        list
    });
    // What the wall leaves out, as a line a person reads from across the room.
    let left_out = move || {
        if !wall {
            return None;
        }
        let (held, more) = rows.with(|rows| {
            let held = rows
                .iter()
                .filter(|(g, _)| g.held() && g.verdict == Verdict::Pass)
                .count();
            (held, rows.len() - held - shown_rows.with(Vec::len))
        });
        let quiet = all_triggers.with(Vec::len) - triggers.with(Vec::len);
        let mut parts = Vec::new();
        if held > 0 {
            parts.push(format!("✓ {held} gates held"));
        }
        if more > 0 {
            parts.push(format!("▲ {more} more holding or failing"));
        }
        if quiet > 0 {
            parts.push(format!("● {quiet} triggers quiet"));
        }
        (!parts.is_empty()).then(|| parts.join(" · "))
    };
    let passing = move || {
        rows.with(|rows| {
            format!(
                "{} of {} gates passing",
                rows.iter()
                    .filter(|(g, _)| g.verdict == Verdict::Pass)
                    .count(),
                rows.len()
            )
        })
    };
    view! {
        <section class="panel board-panel">
            <h2>"Promotion gates " <span data-testid="gates-passing">{passing}</span></h2>
            <table class="board" data-testid="gate-board">
                <tbody>{move || shown_rows.get().into_iter().map(|(g, spark)| {
                    let guidance = guide(&g.id);
                    let assumption = assumed(&g.id);
                    gate_row(g, spark, guidance, assumption)
                }).collect::<Vec<_>>()}</tbody>
            </table>
            <p class="left-out" data-testid="board-left-out">{left_out}</p>
            <h2>"Rollback triggers"</h2>
            <table class="board" data-testid="trigger-board">
                <tbody>{move || triggers.get().into_iter().map(|t| {
                    let guidance = guide(&t.id);
                    let assumption = assumed(&t.id);
                    trigger_row(t, guidance, assumption)
                }).collect::<Vec<_>>()}</tbody>
            </table>
        </section>
    }
}
