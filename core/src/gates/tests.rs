//! Hold timers, tolerance, trigger episodes, as tables over a scripted metric.

use std::cell::Cell;
use std::collections::BTreeMap;

use super::*;

use crate::fixtures;
use crate::query::{Aggregate, Selector};
use crate::time::MINUTE;

/// p95(latency_ms) is whatever the test last set; `None` is no data.
struct Scripted(Cell<Option<f64>>);

impl MetricSource for Scripted {
    fn aggregate(&self, _: &str, _: &Selector, _: &Aggregate, _: Millis, _: Millis) -> Option<f64> {
        self.0.get()
    }
}

const PLAN: &str = r#"
[rollout]
id = "g"
title = "G"

[[stage]]
id = "canary"
traffic = 10
flags = { enabled = true }

[[stage]]
id = "ga"
traffic = 100
flags = { enabled = false }

[[metric]]
id = "latency_ms"
kind = "distribution"
unit = "ms"

[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 700ms"
window = "5m"
hold = "60m"
stages = ["canary"]

[[gate]]
id = "flaky"
expr = "p95(latency_ms) <= 700ms"
window = "5m"
hold = "10m"
tolerate = 2

[[gate]]
id = "guarded"
expr = "p95(latency_ms) <= 700ms when enabled"
window = "5m"
hold = "5m"

[[trigger]]
id = "breach"
expr = "p95(latency_ms) > 900ms"
for = "10m"
action = "kill"
stages = ["canary"]
"#;

struct Run {
    plan: Plan,
    compiled: Compiled,
    memory: Memory,
    source: Scripted,
}

impl Run {
    fn new() -> Run {
        let plan = crate::plan::parse("g.toml", PLAN).unwrap();
        let compiled = Compiled::new(&plan).unwrap();
        Run {
            plan,
            compiled,
            memory: Memory::default(),
            source: Scripted(Cell::new(None)),
        }
    }

    /// Evaluates once a minute from `from` to `to` minutes with the given p95.
    fn minutes(&mut self, from: i64, to: i64, p95: Option<f64>, stage: &str) -> Evaluated {
        self.source.0.set(p95);
        let mut last = None;
        for m in from..=to {
            last = Some(evaluate(
                &self.plan,
                &self.compiled,
                &mut self.memory,
                &self.source,
                Moment {
                    stage: Some(stage),
                    entered_at: None,
                    armed: true,
                    at: m * MINUTE,
                },
            ));
        }
        last.unwrap()
    }
}

fn gate<'a>(e: &'a Evaluated, id: &str) -> &'a GateStatus {
    e.gates.iter().find(|g| g.id == id).unwrap()
}

#[test]
fn a_gate_holds_after_an_hour_of_passing_and_says_what_it_still_needs() {
    let mut run = Run::new();
    let e = run.minutes(0, 41, Some(600.0), "canary");
    let g = gate(&e, "p95");
    assert_eq!(
        (g.verdict, g.held_for, g.needs, g.held()),
        (Verdict::Pass, Span(41 * MINUTE), Span(19 * MINUTE), false)
    );
    assert!(g.guards_current);
    assert!(!e.readiness()["p95"].clone().held());
    let e = run.minutes(42, 60, Some(600.0), "canary");
    assert!(gate(&e, "p95").held());
    assert!(e.readiness()["p95"].held());
}

#[test]
fn a_hold_does_not_grow_across_time_nobody_observed() {
    let mut run = Run::new();
    let e = run.minutes(0, 20, Some(600.0), "canary");
    assert_eq!(gate(&e, "p95").held_for, Span(20 * MINUTE));
    // The server is down from minute 20 to minute 50; evaluation resumes at 50.
    run.memory.skip_unobserved(50 * MINUTE, 2 * MINUTE);
    let e = run.minutes(50, 50, Some(600.0), "canary");
    assert_eq!(
        gate(&e, "p95").held_for,
        Span(20 * MINUTE),
        "the 30 minutes nobody saw do not count"
    );
    // A normal gap changes nothing, and the hold grows on from where it was.
    run.memory.skip_unobserved(51 * MINUTE, 2 * MINUTE);
    let e = run.minutes(51, 51, Some(600.0), "canary");
    assert_eq!(gate(&e, "p95").held_for, Span(21 * MINUTE));
    // A trigger episode is paused the same way.
    let e = run.minutes(52, 58, Some(950.0), "canary");
    let breach = e.triggers.iter().find(|t| t.id == "breach").unwrap();
    assert_eq!(breach.true_for, Span(6 * MINUTE));
    run.memory.skip_unobserved(80 * MINUTE, 2 * MINUTE);
    let e = run.minutes(80, 80, Some(950.0), "canary");
    let breach = e.triggers.iter().find(|t| t.id == "breach").unwrap();
    assert_eq!(breach.true_for, Span(6 * MINUTE));
    assert!(e.firings.is_empty(), "no kill for time nobody saw");
}

#[test]
fn statuses_and_firings_read_in_the_metric_unit() {
    let mut run = Run::new();
    let e = run.minutes(0, 0, Some(600.0), "canary");
    assert_eq!(
        gate(&e, "p95").observed(),
        "p95(latency_ms) = 600ms <= 700ms"
    );
    // Over 900ms from minute 1, for 10m: fires at minute 11, its reason in milliseconds.
    let e = run.minutes(1, 11, Some(950.0), "canary");
    let reasons: Vec<&str> = e.firings.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["trigger breach (breach) true for 10m: p95(latency_ms) = 950ms"]
    );
}

#[test]
fn one_failure_at_59_minutes_resets_the_hold() {
    let mut run = Run::new();
    run.minutes(0, 58, Some(600.0), "canary");
    let e = run.minutes(59, 59, Some(800.0), "canary");
    assert_eq!(
        (gate(&e, "p95").verdict, gate(&e, "p95").held_for),
        (Verdict::Fail, Span(0))
    );
    let e = run.minutes(60, 100, Some(600.0), "canary");
    assert_eq!(
        gate(&e, "p95").held_for,
        Span(40 * MINUTE),
        "counts from the first pass after the failure"
    );
}

#[test]
fn no_data_never_passes_and_resets_the_hold() {
    let mut run = Run::new();
    let e = run.minutes(0, 120, None, "canary");
    let g = gate(&e, "p95");
    assert_eq!(
        (g.verdict, g.held_for, g.held()),
        (Verdict::NoData, Span(0), false)
    );
    assert!(g.reason.as_deref().unwrap().contains("no samples"));
    assert!(!e.readiness()["p95"].passing);
    run.minutes(121, 170, Some(600.0), "canary");
    let e = run.minutes(171, 171, None, "canary");
    assert_eq!(gate(&e, "p95").held_for, Span(0));
}

#[test]
fn a_tolerant_gate_survives_that_many_failures_in_a_row() {
    let mut run = Run::new();
    run.minutes(0, 20, Some(600.0), "canary");
    let e = run.minutes(21, 22, Some(800.0), "canary");
    let g = gate(&e, "flaky");
    assert_eq!(
        (g.failures_in_a_row, g.held_for),
        (2, Span(22 * MINUTE)),
        "two tolerated"
    );
    let e = run.minutes(23, 23, Some(800.0), "canary");
    assert_eq!(gate(&e, "flaky").held_for, Span(0), "the third resets");
}

/// A tolerated failure keeps the hold from resetting, but the gate is not held while it
/// fails: nothing progresses on a FAIL, and the blocker says why in words.
#[test]
fn a_tolerated_failure_is_not_held_and_blocks_progress_until_a_pass() {
    let mut run = Run::new();
    // Past its hold, passing: held.
    let e = run.minutes(0, 40, Some(600.0), "canary");
    let flaky = gate(&e, "flaky");
    assert!(flaky.held(), "{flaky:?}");
    assert!(e.readiness()["flaky"].held());
    // One tolerated failure: the hold stands, but it is not held now.
    let e = run.minutes(41, 41, Some(800.0), "canary");
    let flaky = gate(&e, "flaky");
    assert_eq!((flaky.verdict, flaky.failures_in_a_row), (Verdict::Fail, 1));
    assert!(flaky.held_for.0 > 0 && !flaky.held(), "{flaky:?}");
    let readiness = e.readiness();
    assert!(!readiness["flaky"].held());
    let plan = run.plan.clone();
    let mut state = crate::rollout::RolloutState::new();
    state.phase = crate::rollout::Phase::Running;
    state.stage = Some(0);
    state.stage_entered_at = Some(0);
    let blockers = crate::rollout::progress_blockers(&plan, &state, &readiness, 41 * MINUTE);
    assert!(
        blockers
            .iter()
            .any(|b| b.starts_with("gate flaky fails now (a tolerated failure")),
        "{blockers:?}"
    );
    // Passing again, with its hold intact: held at once.
    let e = run.minutes(42, 42, Some(600.0), "canary");
    assert!(gate(&e, "flaky").held());
}

#[test]
fn a_false_when_guard_is_not_applicable_and_does_not_block() {
    let mut run = Run::new();
    let e = run.minutes(0, 10, None, "ga");
    let g = gate(&e, "guarded");
    assert_eq!((g.verdict, g.held()), (Verdict::NotApplicable, true));
    assert!(!gate(&e, "p95").guards_current);
}

#[test]
fn a_trigger_fires_once_per_episode_after_its_for() {
    let mut run = Run::new();
    let e = run.minutes(0, 9, Some(950.0), "canary");
    assert!(e.firings.is_empty());
    assert_eq!(e.triggers[0].true_for, Span(9 * MINUTE));
    let e = run.minutes(10, 10, Some(950.0), "canary");
    assert_eq!(e.firings.len(), 1);
    assert_eq!(e.firings[0].action, TriggerAction::Kill);
    assert!(
        e.firings[0].reason.starts_with("trigger breach"),
        "{}",
        e.firings[0].reason
    );
    let e = run.minutes(11, 30, Some(950.0), "canary");
    assert!(e.firings.is_empty(), "same episode");
    // Clears, then a new 10-minute breach is a new episode.
    run.minutes(31, 31, Some(500.0), "canary");
    let e = run.minutes(32, 41, Some(950.0), "canary");
    assert!(e.firings.is_empty());
    let e = run.minutes(42, 42, Some(950.0), "canary");
    assert_eq!(e.firings.len(), 1);
}

#[test]
fn a_trigger_is_disarmed_outside_its_stages_and_when_not_running() {
    let mut run = Run::new();
    let e = run.minutes(0, 30, Some(950.0), "ga");
    assert!(e.firings.is_empty() && !e.triggers[0].armed);
    run.source.0.set(Some(950.0));
    let mut fired = 0;
    for m in 0..30 {
        let e = evaluate(
            &run.plan,
            &run.compiled,
            &mut run.memory,
            &run.source,
            Moment {
                stage: Some("canary"),
                entered_at: None,
                armed: false,
                at: m * MINUTE,
            },
        );
        fired += e.firings.len();
    }
    assert_eq!(fired, 0);
    let e = run.minutes(31, 31, None, "canary");
    assert!(e.firings.is_empty() && e.triggers[0].verdict == Verdict::NoData);
}

#[test]
fn before_the_first_evaluation_every_gate_is_no_data_and_nothing_is_healthy() {
    let plan = crate::plan::parse(
        "spiralogic.toml",
        include_str!("../../../plans/spiralogic.toml"),
    )
    .unwrap();
    let gates = not_yet_evaluated(&plan, Some("canary"));
    assert_eq!(gates.len(), plan.gates.len());
    assert!(
        gates
            .iter()
            .all(|g| g.verdict == Verdict::NoData && !g.held() && g.needs == g.hold)
    );
    let state = crate::rollout::RolloutState::new();
    let snapshot = crate::snapshot::Snapshot::new(&plan, &state, gates, Vec::new(), 0);
    assert_ne!(snapshot.summary().health, crate::snapshot::Health::Healthy);
}

/// p95 by the minute a window ends in: what a store with history would answer.
struct History(std::cell::RefCell<BTreeMap<i64, f64>>);

impl MetricSource for History {
    fn aggregate(
        &self,
        _: &str,
        _: &Selector,
        _: &Aggregate,
        _: Millis,
        at: Millis,
    ) -> Option<f64> {
        self.0.borrow().get(&at.div_euclid(MINUTE)).copied()
    }
}

/// Two stages (canary, ga) and `latency_ms`, with gates that read the past.
const PAST: &str = r#"
[[gate]]
id = "no-worse"
expr = "p95(latency_ms) <= 1.1 * at_entry(p95(latency_ms))"
window = "1m"
hold = "1m"

[[gate]]
id = "vs-yesterday"
expr = "p95(latency_ms) <= 1.5 * p95(latency_ms offset 24h)"
window = "1m"
hold = "1m"

[[gate]]
id = "cycled"
expr = "p95(latency_ms) <= 700ms"
window = "10m"
cycles = 2

[[gate]]
id = "quiet"
expr = "fired(slow) == 0"
window = "1m"
hold = "1m"

[[trigger]]
id = "slow"
expr = "p95(latency_ms) > 900ms"
for = "1m"
action = "alert"
"#;

struct PastRun {
    plan: Plan,
    compiled: Compiled,
    memory: Memory,
    source: History,
}

impl PastRun {
    fn new() -> PastRun {
        let text = fixtures::two_stage_plan("past", "Past", PAST);
        let plan = crate::plan::parse("past.toml", &text).unwrap();
        PastRun {
            compiled: Compiled::new(&plan).unwrap(),
            plan,
            memory: Memory::default(),
            source: History(Default::default()),
        }
    }

    fn set(&self, minute: i64, p95: f64) {
        self.source.0.borrow_mut().insert(minute, p95);
    }

    fn at(&mut self, minute: i64, stage: &str, entered: Option<i64>) -> Evaluated {
        evaluate(
            &self.plan,
            &self.compiled,
            &mut self.memory,
            &self.source,
            Moment {
                stage: Some(stage),
                entered_at: entered.map(|m| m * MINUTE),
                armed: true,
                at: minute * MINUTE,
            },
        )
    }
}

#[test]
fn at_entry_is_the_value_when_the_stage_was_entered_and_never_passes_without_it() {
    let mut run = PastRun::new();
    run.set(5, 500.0);
    let before = run.at(5, "canary", None);
    assert_eq!(
        gate(&before, "no-worse").verdict,
        Verdict::NoData,
        "not entered yet"
    );
    // Entered at minute 10, with nothing in the window then: no baseline, never a pass.
    run.set(12, 500.0);
    let e = run.at(12, "canary", Some(10));
    assert_eq!(gate(&e, "no-worse").verdict, Verdict::NoData);
    assert!(
        gate(&e, "no-worse")
            .reason
            .as_deref()
            .unwrap()
            .contains("when the stage was entered")
    );
    // A late event fills the entry window: the baseline is read then, and kept.
    run.set(10, 500.0);
    run.set(13, 540.0);
    assert_eq!(
        gate(&run.at(13, "canary", Some(10)), "no-worse").verdict,
        Verdict::Pass
    );
    run.set(10, 100.0);
    run.set(14, 600.0);
    assert_eq!(
        gate(&run.at(14, "canary", Some(10)), "no-worse").verdict,
        Verdict::Fail,
        "600 > 1.1 x 500: the baseline stays what it was when read"
    );
    // A new stage reads its own baseline.
    run.set(20, 580.0);
    run.set(21, 600.0);
    assert_eq!(
        gate(&run.at(21, "ga", Some(20)), "no-worse").verdict,
        Verdict::Pass
    );
}

#[test]
fn an_offset_reads_the_same_window_a_day_before_and_no_history_is_no_data() {
    let mut run = PastRun::new();
    let day = 24 * 60;
    run.set(day + 5, 550.0);
    let e = run.at(day + 5, "canary", Some(0));
    assert_eq!(gate(&e, "vs-yesterday").verdict, Verdict::NoData);
    run.set(5, 400.0);
    assert_eq!(
        gate(&run.at(day + 5, "canary", Some(0)), "vs-yesterday").verdict,
        Verdict::Pass
    );
    run.set(6, 300.0);
    run.set(day + 6, 550.0);
    assert_eq!(
        gate(&run.at(day + 6, "canary", Some(0)), "vs-yesterday").verdict,
        Verdict::Fail
    );
}

#[test]
fn cycles_count_windows_that_end_passing() {
    let mut run = PastRun::new();
    for m in 0..=60 {
        run.set(m, 500.0);
    }
    // A failure inside a window that has recovered by its end does not break the count.
    run.set(15, 800.0);
    let mut seen = Vec::new();
    for m in 0..=30 {
        let e = run.at(m, "canary", Some(0));
        let g = gate(&e, "cycled");
        seen.push((m, g.cycles_passed, g.needs.0 / MINUTE));
    }
    assert_eq!(seen[9], (9, 0, 11));
    assert_eq!(seen[10], (10, 1, 10));
    assert_eq!(seen[19], (19, 1, 1));
    assert_eq!(seen[20], (20, 2, 0));
    assert_eq!(seen[30], (30, 2, 0));
    let held = gate(&run.at(30, "canary", Some(0)), "cycled").clone();
    assert!(held.held(), "{held:?}");
    // A window that ends failing starts the count again.
    run.set(40, 800.0);
    let e = run.at(40, "canary", Some(0));
    assert_eq!(gate(&e, "cycled").cycles_passed, 0);
    assert!(!gate(&e, "cycled").held());
}

#[test]
fn fired_counts_a_triggers_firings_in_the_current_stage() {
    let mut run = PastRun::new();
    for m in 0..=10 {
        run.set(m, 500.0);
    }
    assert_eq!(
        gate(&run.at(1, "canary", Some(0)), "quiet").verdict,
        Verdict::Pass
    );
    run.set(2, 950.0);
    run.set(3, 950.0);
    run.at(2, "canary", Some(0));
    let fired = run.at(3, "canary", Some(0));
    assert_eq!(fired.firings.len(), 1);
    assert_eq!(
        gate(&run.at(4, "canary", Some(0)), "quiet").verdict,
        Verdict::Fail
    );
    assert_eq!(run.memory.stage.fired.get("slow"), Some(&1));
    // The next stage starts with none.
    assert_eq!(
        gate(&run.at(5, "ga", Some(5)), "quiet").verdict,
        Verdict::Pass
    );
}

impl Run {
    /// One evaluation at `minute` in `stage`, entered at `entered` minutes.
    fn at(&mut self, minute: i64, p95: Option<f64>, stage: &str, entered: i64) -> Evaluated {
        self.source.0.set(p95);
        evaluate(
            &self.plan,
            &self.compiled,
            &mut self.memory,
            &self.source,
            Moment {
                stage: Some(stage),
                entered_at: Some(entered * MINUTE),
                armed: true,
                at: minute * MINUTE,
            },
        )
    }
}

/// Progress while held, a step back mid-hold, a resume after a kill (the same stage entered
/// again), an outage across a stage change: each entry starts every hold from nothing, and
/// the board says at which traffic it counts.
#[test]
fn every_stage_entry_restarts_every_hold() {
    let mut run = Run::new();
    for m in 0..=70 {
        run.at(m, Some(600.0), "canary", 0);
    }
    let held = run.at(71, Some(600.0), "canary", 0);
    assert!(gate(&held, "p95").held());
    assert_eq!(gate(&held, "flaky").held_for, Span(71 * MINUTE));
    // Progress to ga at 72: flaky (which guards every stage) starts again.
    let e = run.at(72, Some(600.0), "ga", 72);
    assert_eq!(gate(&e, "flaky").held_for, Span(0));
    assert_eq!(
        gate(&e, "flaky").held_text(),
        "held 0s of 10m at 100%, needs 10m"
    );
    let e = run.at(77, Some(600.0), "ga", 72);
    assert_eq!(gate(&e, "flaky").held_for, Span(5 * MINUTE));
    // Step back to canary at 78, mid-hold: canary's p95 must hold its hour again.
    let e = run.at(78, Some(600.0), "canary", 78);
    assert_eq!(gate(&e, "p95").held_for, Span(0));
    assert!(!e.readiness()["p95"].held());
    let e = run.at(100, Some(600.0), "canary", 78);
    assert_eq!(gate(&e, "p95").held_for, Span(22 * MINUTE));
    assert_eq!(
        gate(&e, "p95").held_text(),
        "held 22m of 1h 00m at 10%, needs 38m"
    );
    // A kill and a resume into canary at 110: the same stage, entered again.
    let e = run.at(110, Some(600.0), "canary", 110);
    assert_eq!(gate(&e, "p95").held_for, Span(0));
    // An outage from 111 to 200 across a step forward to ga at 150.
    run.at(111, Some(600.0), "canary", 110);
    let e = run.at(200, Some(600.0), "ga", 150);
    assert_eq!(gate(&e, "flaky").held_for, Span(0));
}

proptest::proptest! {
    /// Whatever the order of evaluations, stage entries and outages, a hold (or its cycles)
    /// never counts time from before the current stage was entered.
    #[test]
    fn a_hold_never_counts_time_from_a_previous_stage(
        steps in proptest::collection::vec((1i64..30, proptest::option::of(0.0f64..1_000.0), 0u8..10), 1..80)
    ) {
        let mut run = Run::new();
        let (mut minute, mut entered, mut stage) = (0i64, 0i64, "canary");
        for (dt, p95, change) in steps {
            minute += dt;
            if change == 0 {
                entered = minute;
                stage = if stage == "canary" { "ga" } else { "canary" };
            } else if change == 1 {
                // Entered again (a resume after a kill, or a step back and forth).
                entered = minute;
            }
            let e = run.at(minute, p95, stage, entered);
            for g in &e.gates {
                proptest::prop_assert!(
                    g.held_for.0 <= (minute - entered) * MINUTE,
                    "{} held {:?} though {} entered {} min ago", g.id, g.held_for, stage, minute - entered
                );
            }
        }
    }
}

/// Sequential comparisons as a gate and a trigger over a real metric store: "not yet known"
/// early, then a conclusive verdict, holds counted only from it, and the split check.
mod comparisons {
    use super::*;
    use crate::time::SECOND;
    use crate::window::{MetricStore, Sample, SampleValue, StoreConfig};

    const PLAN: &str = r#"
[rollout]
id = "c"
title = "C"

[compare]
split = "even"

[[stage]]
id = "canary"
traffic = 50

[[metric]]
id = "latency_ms"
kind = "distribution"
unit = "ms"

[[metric]]
id = "quality"
kind = "distribution"
range = [0, 1]

[[gate]]
id = "p95-vs-baseline"
expr = 'not_above(p95(latency_ms{variant="canary"}), p95(latency_ms{variant="baseline"}), 10%)'
window = "5m"
hold = "10m"

[[gate]]
id = "quality"
expr = 'not_below(mean(quality{variant="canary"}), mean(quality{variant="baseline"}), 5%)'
window = "5m"
hold = "10m"

[[trigger]]
id = "slower"
expr = 'above(p95(latency_ms{variant="canary"}), p95(latency_ms{variant="baseline"}), 10%)'
for = "1m"
action = "alert"
"#;

    use crate::sequential::tests::Rng;

    struct Arms {
        plan: Plan,
        compiled: Compiled,
        memory: Memory,
        store: MetricStore,
        rng: Rng,
    }

    impl Arms {
        fn new() -> Arms {
            let plan = crate::plan::parse("c.toml", PLAN).unwrap();
            let compiled = Compiled::new(&plan).unwrap();
            let store = MetricStore::new(
                StoreConfig::default(),
                plan.metrics.iter().map(|m| (m.id.clone(), m.kind)),
            );
            Arms {
                plan,
                compiled,
                memory: Memory::default(),
                store,
                rng: Rng(11),
            }
        }

        fn sample(&mut self, metric: &str, variant: &str, ts: Millis, value: f64) {
            let sample = Sample {
                metric: metric.into(),
                labels: [("variant".to_string(), variant.to_string())].into(),
                ts,
                value: SampleValue::Number(value),
            };
            self.store.record(&sample, ts).unwrap();
        }

        /// Seconds `from..to` of traffic: `per_second` events per arm (the canary's share
        /// of them `canary_share` of twice that), the canary's latency times `slower`;
        /// evaluated every 10 s with the stage entered at 0.
        fn run(
            &mut self,
            (from, to): (i64, i64),
            per_second: u32,
            canary_share: f64,
            slower: f64,
        ) -> Vec<Evaluated> {
            let mut out = Vec::new();
            for s in from..to {
                let ts = s * SECOND;
                for _ in 0..2 * per_second {
                    let canary = self.rng.uniform() < canary_share;
                    let latency = self.rng.lognormal(200.0, 0.5);
                    let quality = 0.8 + 0.1 * self.rng.uniform();
                    let (variant, latency) = if canary {
                        ("canary", latency * slower)
                    } else {
                        ("baseline", latency)
                    };
                    self.sample("latency_ms", variant, ts, latency);
                    self.sample("quality", variant, ts, quality);
                }
                if s % 10 == 9 {
                    out.push(evaluate(
                        &self.plan,
                        &self.compiled,
                        &mut self.memory,
                        &self.store,
                        Moment {
                            stage: Some("canary"),
                            entered_at: Some(0),
                            armed: true,
                            at: ts,
                        },
                    ));
                }
            }
            out
        }
    }

    fn verdicts(runs: &[Evaluated], id: &str) -> Vec<Verdict> {
        runs.iter().map(|e| gate(e, id).verdict).collect()
    }

    #[test]
    fn equal_arms_are_not_yet_known_then_not_worse_and_the_hold_counts_from_then() {
        let mut arms = Arms::new();
        let runs = arms.run((0, 1200), 30, 0.5, 1.0);
        let v = verdicts(&runs, "p95-vs-baseline");
        assert_eq!(v[0], Verdict::NotYetKnown, "ten seconds decide nothing");
        let first_pass = v
            .iter()
            .position(|v| *v == Verdict::Pass)
            .expect("concludes");
        assert!(
            v[..first_pass].iter().all(|v| *v == Verdict::NotYetKnown),
            "never worse on the way: {v:?}"
        );
        let g = gate(&runs[0], "p95-vs-baseline");
        assert_eq!(g.held_for, Span(0), "not-yet-known time is not held");
        let s = g.comparisons[0].sequential.as_ref().unwrap();
        assert!(s.comparison.canary_n > 0 && s.comparison.baseline_n > 0);
        assert!(
            g.observed().starts_with("not yet known: canary"),
            "{}",
            g.observed()
        );
        // The hold counts from the first conclusive evaluation, not from the stage's entry.
        let last = gate(runs.last().unwrap(), "p95-vs-baseline");
        if v[first_pass..].iter().all(|v| *v == Verdict::Pass) {
            assert_eq!(
                last.held_for,
                Span((v.len() - 1 - first_pass) as i64 * 10 * SECOND)
            );
        }
        assert!(
            runs.iter().all(|e| e.firings.is_empty()),
            "no trigger on equal arms"
        );
        assert_eq!(
            *verdicts(&runs, "quality").last().unwrap(),
            Verdict::Pass,
            "a bounded mean concludes too"
        );
    }

    #[test]
    fn a_slower_canary_is_worse_and_the_trigger_fires_on_it() {
        let mut arms = Arms::new();
        let runs = arms.run((0, 900), 10, 0.5, 1.5);
        let v = verdicts(&runs, "p95-vs-baseline");
        assert!(!v.contains(&Verdict::Pass), "never passes: {v:?}");
        assert_eq!(*v.last().unwrap(), Verdict::Fail);
        let fired: Vec<_> = runs.iter().flat_map(|e| &e.firings).collect();
        assert_eq!(fired.len(), 1, "fires once for the episode");
        let t = &runs.last().unwrap().triggers[0];
        assert_eq!(t.word(), "FIRED");
        assert!(
            t.observed().starts_with("worse: canary"),
            "{}",
            t.observed()
        );
    }

    /// The events people are told over a run of evaluations.
    fn told(arms: &Arms, runs: &[Evaluated]) -> Vec<crate::notify::Event> {
        runs.windows(2)
            .flat_map(|w| crate::notify::of_evaluations(&arms.plan, &w[0], &w[1], 0))
            .collect()
    }

    #[test]
    fn a_conclusive_worse_is_told_once_and_noise_that_never_concludes_tells_nothing() {
        let mut arms = Arms::new();
        let runs = arms.run((0, 900), 10, 0.5, 1.5);
        let events = told(&arms, &runs);
        let worse: Vec<_> = events
            .iter()
            .filter(|e| e.kind == crate::plan::EventKind::Worse)
            .collect();
        // The gate and the trigger read the same comparison: one message, not two, though
        // the gate never held.
        assert_eq!(worse.len(), 1, "{events:?}");
        assert!(
            worse[0].lines[0].starts_with("worse: canary"),
            "{:?}",
            worse[0]
        );
        let mut arms = Arms::new();
        let runs = arms.run((0, 900), 10, 0.5, 1.0);
        assert!(told(&arms, &runs).is_empty(), "equal arms tell nothing");
    }

    #[test]
    fn a_split_other_than_the_stage_implies_makes_every_comparison_not_yet_known() {
        let mut arms = Arms::new();
        // The stage implies half and half; the canary gets 70% of the events.
        let runs = arms.run((0, 900), 10, 0.7, 1.0);
        let last = gate(runs.last().unwrap(), "p95-vs-baseline");
        assert_eq!(last.verdict, Verdict::NotYetKnown);
        let s = last.comparisons[0].sequential.as_ref().unwrap();
        assert!(
            s.split_off
                .as_deref()
                .is_some_and(|w| w.contains("traffic split off")),
            "{s:?}"
        );
        assert!(
            last.observed().contains("traffic split off"),
            "{}",
            last.observed()
        );
        assert!(runs.iter().all(|e| e.firings.is_empty()));
    }
}
