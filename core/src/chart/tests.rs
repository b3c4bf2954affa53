//! Chart specs, limits, gate charts and markers against the example plans.

use super::*;
use crate::query::{Aggregate, Selector};
use crate::time::Millis;
use crate::unit::Unit;
use crate::window::MetricStore;

fn spiralogic() -> Plan {
    let text = include_str!("../../../plans/spiralogic.toml");
    crate::plan::parse("spiralogic.toml", text).unwrap()
}

#[test]
fn every_metric_gets_a_chart_latency_first_and_the_mix_stacked() {
    let charts = charts(&spiralogic());
    let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "latency_ms",
            "first_token_ms",
            "mode",
            "error",
            "cache_hit",
            "gate-cache-trend",
            "quality",
            "gate-quality",
            "compare-quality",
            "tts_queue_age_p95_ms",
            "tokens_per_response"
        ]
    );
    let mode = &charts[2];
    assert_eq!(mode.style, Style::StackedArea);
    assert_eq!(mode.series, ["mode.full", "mode.lite", "mode.fallback"]);
    assert_eq!(mode.unit, Unit::Ratio);
    // With what the gates on them judge, each over its own window.
    assert_eq!(
        charts[0].series,
        [
            "latency_ms.p50",
            "latency_ms.p95",
            "latency_ms.p99",
            "latency_ms.p95@300000",
            "latency_ms.p50@300000"
        ]
    );
    assert_eq!(
        charts[0].labels[3..],
        ["p95 over 5m (gate)", "p50 over 5m (gate)"]
    );
}

/// A burst of slow requests puts two 10 s points over a 700 ms line while the gate, reading
/// five minutes, stays under it: the gate's own line is under the limit at every point where
/// the gate would pass, and its newest point is exactly the gate's value now.
#[test]
fn the_gates_own_line_agrees_with_its_verdict_where_the_10s_points_do_not() {
    use crate::window::{Sample, SampleValue, StoreConfig};
    let plan = spiralogic();
    let reading = gate_readings(&plan)
        .into_iter()
        .find(|r| r.id == "latency_ms.p95@300000")
        .expect("the p95 gate's reading");
    let gate = plan
        .gates
        .iter()
        .find(|g| g.expr.starts_with("p95(latency_ms)"))
        .unwrap();
    let limit = thresholds(&plan)
        .into_iter()
        .find(|t| t.gate == gate.id)
        .unwrap()
        .value;
    let t0: Millis = 1_700_000_000_000;
    let mut store = MetricStore::new(
        StoreConfig::default(),
        plan.metrics.iter().map(|m| (m.id.clone(), m.kind)),
    );
    // Ten minutes, 20 events a 10 s bucket at 200 ms; in two buckets, 15 of 20 at 3 s.
    for step in 0..60i64 {
        for i in 0..20i64 {
            let ts = t0 + step * 10_000 + i * 400;
            let slow = (step == 40 || step == 41) && i < 15;
            let v = if slow { 3_000.0 } else { 200.0 };
            let sample = Sample {
                metric: "latency_ms".into(),
                labels: Default::default(),
                ts,
                value: SampleValue::Number(v),
            };
            store.record(&sample, ts).unwrap();
        }
    }
    let (from, to, step) = (t0, t0 + 600_000 - 1, 10_000);
    let all = Selector::new();
    let raw = store.series(
        "latency_ms",
        &all,
        &Aggregate::Quantile(0.95),
        from,
        to,
        step,
    );
    let judged = store.windowed(
        "latency_ms",
        &all,
        &reading.aggregate,
        reading.window,
        (from, to, step),
    );
    assert!(
        raw.iter().filter(|p| p.v > Some(limit)).count() >= 2,
        "the burst crosses in 10 s points"
    );
    assert!(
        judged.iter().all(|p| p.v <= Some(limit)),
        "the 5 min reading never does: {judged:?}"
    );
    // Its newest point is what the gate reads now.
    let now = crate::query::MetricSource::aggregate(
        &store,
        "latency_ms",
        &all,
        &reading.aggregate,
        reading.window,
        to,
    );
    assert_eq!(judged.last().unwrap().v, now);
    // Each point is the window ending where its step ends.
    let mid = &judged[45];
    let at = mid.t + step - 1;
    assert_eq!(
        mid.v,
        crate::query::MetricSource::aggregate(
            &store,
            "latency_ms",
            &all,
            &reading.aggregate,
            reading.window,
            at
        )
    );
}

#[test]
fn stage_changes_kills_overrides_and_alerts_mark_the_charts_checks_do_not() {
    use crate::rollout::{Action, Actor, AuditRecord, Phase, StateSummary};
    let summary = |phase, stage: Option<&str>| StateSummary {
        phase,
        stage: stage.map(str::to_string),
        traffic: 10.0,
    };
    let record = |action, role| AuditRecord {
        at: 42,
        actor: Actor {
            name: "trigger:error-spike".into(),
            role,
            ..Default::default()
        },
        action,
        reason: None,
        before: summary(Phase::Running, Some("canary")),
        after: summary(Phase::Running, Some("beta")),
    };
    use crate::role::Role;
    let progress = marker(&record(Action::Progress, Role::Operator)).unwrap();
    assert_eq!(
        (progress.at, progress.label.as_str(), progress.alarm),
        (42, "to beta", false)
    );
    let kill = marker(&record(Action::Kill, Role::System)).unwrap();
    assert_eq!(
        (kill.label.as_str(), kill.alarm),
        ("kill by trigger:error-spike", true)
    );
    let check = Action::Check {
        list: "l".into(),
        item: "i".into(),
    };
    assert_eq!(marker(&record(check, Role::Operator)), None);
    assert_eq!(marker(&record(Action::Approve, Role::Lead)), None);
    let alert = Action::Alert {
        trigger: "error-spike".into(),
    };
    let alert = marker(&record(alert, Role::System)).unwrap();
    assert_eq!(
        (alert.label.as_str(), alert.alarm),
        ("alert error-spike", true)
    );
    // The server's "markers only" filter names exactly the actions that mark nothing.
    let every = [
        Action::Start,
        Action::Progress,
        Action::Pause,
        Action::Resume,
        Action::Kill,
        Action::Approve,
        Action::Override { gate: "g".into() },
        Action::Check {
            list: "l".into(),
            item: "i".into(),
        },
        Action::Uncheck {
            list: "l".into(),
            item: "i".into(),
        },
        Action::Alert {
            trigger: "t".into(),
        },
        Action::PlanChanged,
    ];
    for action in every {
        let unmarked = UNMARKED_ACTIONS.contains(&action.name());
        let role = Role::System;
        assert_eq!(
            marker(&record(action.clone(), role)).is_none(),
            unmarked,
            "{action:?}"
        );
    }
}

#[test]
fn a_limit_written_as_arithmetic_is_drawn_at_its_value() {
    let pags = plan(
        "pags-cutover.toml",
        include_str!("../../../plans/pags-cutover.toml"),
    );
    let lines: Vec<(String, f64, String, LimitKind)> = charts(&pags)
        .iter()
        .flat_map(|c| c.thresholds.clone())
        .filter(|t| t.gate == "latency")
        .map(|t| (t.series, t.value, t.gate, t.kind))
        .collect();
    // `p95(latency_ms) > 2 * 300ms`
    assert_eq!(
        lines,
        [(
            "latency_ms.p95".to_string(),
            600.0,
            "latency".to_string(),
            LimitKind::Kill
        )]
    );
}

#[test]
fn the_wall_shows_latency_mix_and_errors() {
    let ids: Vec<String> = wall(&spiralogic()).into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["latency_ms", "mode", "error"]);
}

fn plan(file: &str, text: &str) -> Plan {
    crate::plan::parse(file, text).unwrap()
}

fn lens() -> Plan {
    plan("lens-v1.toml", include_str!("../../../plans/lens-v1.toml"))
}

#[test]
fn a_canary_against_baseline_gate_gets_its_own_chart_with_the_moving_limit() {
    let all = charts(&lens());
    let at = all
        .iter()
        .position(|c| c.id == "gate-e2e-vs-baseline")
        .expect("a chart for the relative gate");
    // With the latency charts, before the error and cache charts.
    let latency = all.iter().position(|c| c.id == "latency_ms").unwrap();
    assert!(latency < at);
    assert!(all[latency..at].iter().all(|c| c.unit == Unit::Ms));
    assert!(all.iter().any(|c| c.id == "gate-tail-latency"));
    let chart = &all[at];
    assert_eq!(chart.unit, Unit::Ms);
    assert_eq!(
        chart.labels,
        [
            "canary p95",
            "baseline p95",
            "limit 1.1 * p95(latency_ms{variant=\"baseline\"})"
        ]
    );
    assert_eq!(chart.limits, [chart.series[2].clone()]);
    assert!(chart.thresholds.is_empty());
}

#[test]
fn a_limit_on_one_variant_is_drawn_on_that_variant_not_on_every_event() {
    let hal9 = plan(
        "hal9-shadow.toml",
        include_str!("../../../plans/hal9-shadow.toml"),
    );
    let all = charts(&hal9);
    let error = all.iter().find(|c| c.id == "error").unwrap();
    assert!(error.thresholds.is_empty(), "{:?}", error.thresholds);
    let gate = all
        .iter()
        .find(|c| c.labels == ["baseline rate"])
        .expect("the baseline error gate's chart");
    assert_eq!(gate.unit, Unit::Ratio);
    assert_eq!(gate.thresholds.len(), 1);
    assert_eq!(gate.thresholds[0].series, gate.series[0]);
    assert_eq!(gate.thresholds[0].value, 0.01);
    // Shadow against baseline, p50 and p99: two lines and a limit each.
    let p99 = all
        .iter()
        .find(|c| c.labels.first().is_some_and(|l| l == "shadow p99"))
        .unwrap();
    assert_eq!(p99.labels[1], "baseline p99");
    assert_eq!(p99.limits.len(), 1);
}

#[test]
fn a_limit_on_a_ratio_of_counters_gets_a_chart_of_the_ratio_in_percent() {
    let mirror = plan(
        "semantic-mirror.toml",
        include_str!("../../../plans/semantic-mirror.toml"),
    );
    let gates = gate_charts(&mirror);
    let success = gates
        .iter()
        .find(|c| {
            c.lines
                .iter()
                .any(|l| l.label.starts_with("sum(queries_successful) /"))
        })
        .expect("the success-rate gate's chart");
    assert_eq!(success.unit, Unit::Ratio);
    // The counts behind the ratio would flatten it: only the ratio is drawn.
    assert_eq!(success.lines.len(), 1);
    // The gate's limit, and the alert trigger's line on the same ratio.
    let lines: Vec<(f64, &str, LimitKind)> = success
        .thresholds
        .iter()
        .map(|t| (t.value, t.gate.as_str(), t.kind))
        .collect();
    assert_eq!(lines[0].2, LimitKind::Gate);
    assert_eq!(lines[0].0, 0.85);
    assert_eq!(lines[1..], [(0.6, "hit-rate-low", LimitKind::Alert)]);
    // `last(active_contexts) > 0` is a fixed line on the metric's own chart.
    assert!(
        gates
            .iter()
            .all(|c| c.metric.as_deref() != Some("active_contexts"))
    );
    let ids: Vec<String> = gates.iter().map(|c| c.spec().id).collect();
    assert_eq!(
        ids,
        ["gate-hit-rate", "gate-denial-rate", "gate-rate-limit"]
    );
}

#[test]
fn a_trigger_on_one_variant_gets_its_line_drawn_somewhere() {
    let hal9 = plan(
        "hal9-shadow.toml",
        include_str!("../../../plans/hal9-shadow.toml"),
    );
    type Lines = Vec<(String, f64, LimitKind)>;
    let summary = |p: &Plan| -> Vec<(String, Vec<String>, Lines)> {
        gate_charts(p)
            .into_iter()
            .filter(|c| c.kind != LimitKind::Gate)
            .map(|c| {
                (
                    c.spec().id,
                    c.lines.iter().map(|l| l.label.clone()).collect(),
                    c.thresholds
                        .iter()
                        .map(|t| (t.gate.clone(), t.value, t.kind))
                        .collect(),
                )
            })
            .collect()
    };
    // `p95(latency_ms{variant="baseline"}) > 500ms when shadow_mode`: no gate draws the
    // baseline p95, so the kill line gets a chart of its own.
    assert_eq!(
        summary(&hal9),
        [(
            "trigger-production-impact".to_string(),
            vec!["baseline p95".to_string()],
            vec![("production-impact".to_string(), 500.0, LimitKind::Kill)]
        )]
    );
    // `p99 > 2 * p95` (the tail-latency alert) compares two series: both and its moving
    // line on a chart of their own.
    assert_eq!(
        summary(&lens()),
        [
            (
                "trigger-tail-violation".to_string(),
                vec![
                    "p99".to_string(),
                    "p95".to_string(),
                    "limit 2 * p95(stage_a_latency_ms)".to_string()
                ],
                vec![]
            ),
            (
                "trigger-canary-errors".to_string(),
                vec!["canary rate".to_string()],
                vec![("canary-errors".to_string(), 0.03, LimitKind::Alert)]
            )
        ]
    );
    // Their series are in the charts the page shows, and sparklines stay the gates'.
    let ids: Vec<String> = charts(&hal9).into_iter().map(|c| c.id).collect();
    assert!(
        ids.contains(&"trigger-production-impact".to_string()),
        "{ids:?}"
    );
    assert!(!sparklines(&hal9).contains_key("production-impact"));
}

#[test]
fn every_gate_over_metrics_has_a_sparkline_on_the_series_it_judges() {
    let spark = sparklines(&spiralogic());
    assert_eq!(
        spark.get("p95-latency"),
        Some(&("latency_ms.p95".to_string(), Some(700.0)))
    );
    assert_eq!(spark["quality"].0, "gate:quality.0");
    assert_eq!(spark["quality"].1, None, "a moving limit has no fixed line");
    for plan in [spiralogic(), lens()] {
        let series: Vec<String> = charts(&plan).into_iter().flat_map(|c| c.series).collect();
        for (gate, (id, _)) in sparklines(&plan) {
            assert!(series.contains(&id), "{gate}: {id} is on no chart");
        }
    }
}

fn variant_store() -> MetricStore {
    MetricStore::new(
        crate::window::StoreConfig::default(),
        [("latency_ms".to_string(), MetricKind::Distribution)],
    )
}

fn record(store: &mut MetricStore, variant: &str, ts: Millis, v: f64) {
    let sample = crate::window::Sample {
        metric: "latency_ms".into(),
        labels: [("variant".to_string(), variant.to_string())].into(),
        ts,
        value: crate::window::SampleValue::Number(v),
    };
    store.record(&sample, ts).unwrap();
}

const T0: Millis = 1_700_000_000_000;
const STEP: Millis = 10_000;

proptest::proptest! {
    /// Each line of the gate chart is its variant's own series, and the limit at every
    /// step is 1.10 times the baseline's value at that step: a gap where the baseline
    /// has none, never zero.
    #[test]
    fn gate_lines_are_the_variants_and_the_limit_follows_the_baseline(
        steps in proptest::collection::vec(
            (proptest::collection::vec(1.0f64..5_000.0, 0..20),
             proptest::collection::vec(1.0f64..5_000.0, 0..20)),
            1..12,
        )
    ) {
        let mut store = variant_store();
        for (i, (canary, baseline)) in steps.iter().enumerate() {
            let ts = T0 + i as Millis * STEP;
            for v in canary { record(&mut store, "canary", ts, *v); }
            for v in baseline { record(&mut store, "baseline", ts, *v); }
        }
        let chart = gate_charts(&lens())
            .into_iter()
            .find(|c| c.gate == "e2e-vs-baseline")
            .unwrap();
        let to = T0 + (steps.len() as Millis - 1) * STEP;
        let series = gate_series(&chart, &store, T0, to, STEP);
        let variant = |name: &str| {
            let selector: Selector = [("variant".to_string(), name.to_string())].into();
            store.series("latency_ms", &selector, &Aggregate::Quantile(0.95), T0, to, STEP)
        };
        proptest::prop_assert_eq!(&series[0].points, &variant("canary"));
        proptest::prop_assert_eq!(&series[1].points, &variant("baseline"));
        proptest::prop_assert_eq!(series[2].points.len(), steps.len());
        for (limit, (baseline, (_, values))) in series[2]
            .points
            .iter()
            .zip(series[1].points.iter().zip(&steps))
        {
            proptest::prop_assert_eq!(baseline.v.is_none(), values.is_empty());
            proptest::prop_assert_eq!(limit.v, baseline.v.map(|b| 1.1 * b));
        }
    }
}

#[test]
fn gate_and_trigger_limits_become_lines_on_the_series_they_judge() {
    let charts = charts(&spiralogic());
    let lines = |chart: &ChartSpec| -> Vec<(String, f64, String, LimitKind)> {
        chart
            .thresholds
            .iter()
            .map(|t| (t.series.clone(), t.value, t.gate.clone(), t.kind))
            .collect()
    };
    let line = |series: &str, value, source: &str, kind| {
        (series.to_string(), value, source.to_string(), kind)
    };
    // Gates, then the alert, then the kill drawn last (on top).
    assert_eq!(
        lines(&charts[0]),
        [
            line("latency_ms.p95", 700.0, "p95-latency", LimitKind::Gate),
            line("latency_ms.p50", 350.0, "p50-latency", LimitKind::Gate),
            line("latency_ms.p95", 700.0, "latency-budget", LimitKind::Alert),
            line("latency_ms.p95", 900.0, "p95-breach", LimitKind::Kill),
        ]
    );
    let mode = &charts[2];
    assert_eq!(
        lines(mode),
        [
            line("mode.fallback", 0.03, "fallback-rate", LimitKind::Gate),
            line("mode.fallback", 0.1, "fallback-storm", LimitKind::Kill),
        ]
    );
    let cache = &charts[4];
    assert_eq!(cache.thresholds[0].value, 0.4);
    // A comparison of canary with baseline has no fixed line: it moves with the baseline, on
    // the gate's own chart.
    let by_id = |id: &str| charts.iter().find(|c| c.id == id).unwrap();
    assert!(by_id("quality").thresholds.is_empty());
    assert_eq!(by_id("gate-quality").limits.len(), 1);
}

/// A gauge the plan reports in percentage points (`unit = "%"`, headroom 65) is drawn and
/// described as 65 %, not scaled again as if it were a 0..1 ratio (which read 6500 %).
#[test]
fn a_gauge_in_percent_points_is_not_scaled_like_a_ratio() {
    let p = plan(
        "hal9-shadow.toml",
        include_str!("../../../plans/hal9-shadow.toml"),
    );
    let headroom = charts(&p)
        .into_iter()
        .find(|c| c.id == "cpu_headroom")
        .unwrap();
    assert_eq!(headroom.unit, Unit::Percent);
    assert_eq!(headroom.unit.display_scale(), 1.0);
    assert!(headroom.unit.is_percent());
    assert_eq!(headroom.unit.format(Some(65.0)), "65%");
    // A failure rate is ranked by what the plan bounds, not by its name.
    assert_eq!(better(&p, "error"), Some(Better::Lower));
    assert_eq!(better(&p, "response_match"), Some(Better::Higher));
    let wall: Vec<String> = wall(&p).into_iter().map(|c| c.id).collect();
    assert!(wall.contains(&"error".to_string()), "{wall:?}");
}

proptest::proptest! {
    /// Every limit is on the axis, and so is every value; percentages stay within +-100%.
    #[test]
    fn the_value_axis_holds_every_limit_and_value(
        values in proptest::collection::vec(-100.0f64..100.0, 0..50),
        limits in proptest::collection::vec(-100.0f64..100.0, 0..4),
        percent in proptest::bool::ANY,
    ) {
        let (bottom, top) = value_axis(values.iter().copied(), &limits, percent);
        proptest::prop_assert!(bottom < top);
        for v in values.iter().chain(&limits) {
            proptest::prop_assert!(*v >= bottom - 1e-9 && *v <= top + 1e-9, "{} outside {}..{}", v, bottom, top);
        }
    }
}

/// 99.95% availability under a 99.9% limit: on a 0-100% axis the two are a pixel apart; the
/// axis zooms so the gap is at least a fifth of its height. Latency from 120 to 650 ms under
/// 700 ms keeps zero at the bottom.
#[test]
fn a_limit_near_the_data_stays_visible() {
    let (bottom, top) = value_axis([99.95, 99.97, 99.93], &[99.9], true);
    assert!((99.95 - 99.9) / (top - bottom) > 0.2, "{bottom}..{top}");
    assert!(top <= 100.0);
    assert_eq!(value_axis([120.0, 650.0], &[700.0], false).0, 0.0);
    assert_eq!(value_axis(Vec::new(), &[], false), (0.0, 1.0));
}
