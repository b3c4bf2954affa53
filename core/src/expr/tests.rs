//! The expression language: every runbook gate parses, checks and evaluates; errors point at
//! the right column; no data never passes.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::plan::FlagValue;
use crate::query::{MetricKind, MetricSource};
use crate::time::Millis;

/// Metric values by (canonical read text): e.g. `p95(latency_ms)` -> 612.
struct Fake(BTreeMap<String, f64>);

impl MetricSource for Fake {
    fn aggregate(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        _: Millis,
        _: Millis,
    ) -> Option<f64> {
        let e = Expr {
            kind: Kind::Metric {
                aggregate: aggregate.clone(),
                metric: metric.into(),
                selector: selector.clone(),
                offset: 0,
            },
            column: 1,
        };
        self.0.get(&e.to_string()).copied()
    }

    fn promql(&self, query: &str, _: Millis) -> Result<Option<f64>, String> {
        if query.contains("down") {
            Err("connection refused".into())
        } else {
            Ok(self.0.get("promql").copied())
        }
    }

    fn unavailable(&self, metric: &str) -> Option<String> {
        (metric == "active_contexts" && self.0.contains_key("prometheus down"))
            .then(|| "Prometheus: connection refused".into())
    }
}

struct Plan;

impl Resolve for Plan {
    fn metric(&self, name: &str) -> Option<(MetricKind, Vec<String>)> {
        let kind = match name {
            "latency_ms" | "first_token_ms" | "quality" | "stage_a_latency_ms" => {
                MetricKind::Distribution
            }
            "error" | "cache_hit" | "available" | "response_match" => MetricKind::Ratio,
            "mode" => {
                return Some((
                    MetricKind::Category,
                    vec!["full".into(), "lite".into(), "fallback".into()],
                ));
            }
            "queries_successful" | "reads_total" | "queries_access_denied" => MetricKind::Counter,
            "active_contexts" | "queue_depth" => MetricKind::Gauge,
            _ => return None,
        };
        Some((kind, vec![]))
    }

    fn flag(&self, name: &str) -> Option<Type> {
        (name == "enabled").then_some(Type::Bool)
    }

    fn trigger(&self, id: &str) -> bool {
        id == "errors-spike"
    }
}

fn run(src: &str, values: &[(&str, f64)], enabled: bool) -> Outcome {
    let e = parse(src).unwrap_or_else(|err| panic!("{src}: {err}"));
    check(&e, &Plan).unwrap_or_else(|err| panic!("{src}: {err}"));
    let source = Fake(values.iter().map(|(k, v)| (k.to_string(), *v)).collect());
    let flags = BTreeMap::from([("enabled".to_string(), FlagValue::Bool(enabled))]);
    evaluate(
        &e,
        &EvalContext {
            source: &source,
            window: 300_000,
            at: 0,
            flags: &flags,
            stage: &StageMemory::default(),
            split: None,
        },
    )
    .outcome
}

fn errors_at(src: &str) -> (usize, String) {
    match parse(src).and_then(|e| check(&e, &Plan)) {
        Ok(()) => panic!("{src} should be refused"),
        Err(e) => (e.column, e.message),
    }
}

/// Expression, values that decide it, its outcome, and the outcome with the first value tripled.
type Case = (
    &'static str,
    &'static [(&'static str, f64)],
    Outcome,
    Outcome,
);

const PASS: Outcome = Outcome::Pass;
const FAIL: Outcome = Outcome::Fail;

#[test]
fn every_runbook_expression_parses_checks_and_decides() {
    let cases: &[Case] = &[
        // (expression, values that pass, outcome, outcome when the first value is tripled)
        (
            "p95(latency_ms) <= 700ms",
            &[("p95(latency_ms)", 612.0)],
            PASS,
            FAIL,
        ),
        (
            "p50(latency_ms) <= 350ms",
            &[("p50(latency_ms)", 300.0)],
            PASS,
            FAIL,
        ),
        (
            "p95(first_token_ms) < 800ms",
            &[("p95(first_token_ms)", 400.0)],
            PASS,
            FAIL,
        ),
        (
            "rate(error) <= 0.75%",
            &[("rate(error)", 0.005)],
            PASS,
            FAIL,
        ),
        (
            "share(mode, fallback) <= 3%",
            &[("share(mode, \"fallback\")", 0.02)],
            PASS,
            FAIL,
        ),
        (
            "rate(cache_hit) >= 40%",
            &[("rate(cache_hit)", 0.2)],
            FAIL,
            PASS,
        ),
        (
            "mean(quality{variant=\"canary\"}) >= mean(quality{variant=\"baseline\"}) - 2%",
            &[
                ("mean(quality{variant=\"canary\"})", 0.3),
                ("mean(quality{variant=\"baseline\"})", 0.31),
            ],
            PASS,
            PASS,
        ),
        (
            "p99(stage_a_latency_ms) <= 2 * p95(stage_a_latency_ms)",
            &[
                ("p99(stage_a_latency_ms)", 7.0),
                ("p95(stage_a_latency_ms)", 4.0),
            ],
            PASS,
            FAIL,
        ),
        (
            "p95(latency_ms{variant=\"canary\"}) <= 1.10 * p95(latency_ms{variant=\"baseline\"})",
            &[
                ("p95(latency_ms{variant=\"canary\"})", 105.0),
                ("p95(latency_ms{variant=\"baseline\"})", 100.0),
            ],
            PASS,
            FAIL,
        ),
        (
            "sum(queries_successful) / sum(reads_total) >= 85%",
            &[
                ("sum(queries_successful)", 90.0),
                ("sum(reads_total)", 100.0),
            ],
            PASS,
            PASS,
        ),
        (
            "sum(queries_access_denied) / sum(reads_total) > 10%",
            &[
                ("sum(queries_access_denied)", 5.0),
                ("sum(reads_total)", 100.0),
            ],
            FAIL,
            PASS,
        ),
        (
            "last(active_contexts) > 0 when enabled",
            &[("last(active_contexts)", 3.0)],
            PASS,
            PASS,
        ),
        (
            "promql(\"sum(rate(x[5m])) / sum(rate(y[5m]))\") < 0.6",
            &[("promql", 0.5)],
            PASS,
            FAIL,
        ),
        ("rate(error) > 1%", &[("rate(error)", 0.02)], PASS, PASS),
        (
            "p95(latency_ms) > 2 * 300ms",
            &[("p95(latency_ms)", 500.0)],
            FAIL,
            PASS,
        ),
        (
            "rate(available) < 99%",
            &[("rate(available)", 0.995)],
            FAIL,
            FAIL,
        ),
        (
            "max(queue_depth) > 500",
            &[("max(queue_depth)", 200.0)],
            FAIL,
            PASS,
        ),
        (
            "rate(response_match) > 99.9%",
            &[("rate(response_match)", 0.9995)],
            PASS,
            PASS,
        ),
        (
            "p95(latency_ms) > 900ms or rate(error) > 2%",
            &[("p95(latency_ms)", 400.0), ("rate(error)", 0.001)],
            FAIL,
            PASS,
        ),
        (
            "not (rate(error) > 2%)",
            &[("rate(error)", 0.01)],
            PASS,
            FAIL,
        ),
    ];
    for (src, values, outcome, tripled) in cases {
        assert_eq!(&run(src, values, true), outcome, "{src}");
        let mut more = values.to_vec();
        more[0].1 *= 3.0;
        assert_eq!(
            &run(src, &more, true),
            tripled,
            "{src} with {} tripled",
            values[0].0
        );
    }
}

#[test]
fn no_data_never_passes_and_when_makes_it_not_applicable() {
    assert!(matches!(
        run("p95(latency_ms) <= 700ms", &[], true),
        Outcome::NoData { .. }
    ));
    assert!(matches!(
        run("not (p95(latency_ms) > 700ms)", &[], true),
        Outcome::NoData { .. }
    ));
    assert!(matches!(
        run(
            "sum(queries_successful) / sum(reads_total) >= 85%",
            &[("sum(queries_successful)", 0.0), ("sum(reads_total)", 0.0)],
            true
        ),
        Outcome::NoData { .. }
    ));
    assert_eq!(
        run("last(active_contexts) > 0 when enabled", &[], false),
        Outcome::NotApplicable
    );
    assert!(matches!(
        run("last(active_contexts) > 0 when enabled", &[], true),
        Outcome::NoData { .. }
    ));
    match run("promql(\"down\") < 1", &[], true) {
        Outcome::NoData { reason } => assert_eq!(reason, "promql: connection refused"),
        other => panic!("{other:?}"),
    }
    // Samples held from before the source failed do not count: the failure wins.
    let held = [("last(active_contexts)", 3.0), ("prometheus down", 1.0)];
    match run("last(active_contexts) > 0", &held, true) {
        Outcome::NoData { reason } => {
            assert_eq!(reason, "active_contexts: Prometheus: connection refused")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run("last(active_contexts) > 0", &held[..1], true),
        Outcome::Pass
    );
}

#[test]
fn three_valued_logic() {
    let f = ("rate(error)", 0.5); // rate(error) < 1% is false
    assert_eq!(
        run("rate(error) < 1% and p95(latency_ms) < 1", &[f], true),
        FAIL,
        "false and nodata = false"
    );
    assert_eq!(
        run("rate(error) > 1% or p95(latency_ms) < 1", &[f], true),
        PASS,
        "true or nodata = true"
    );
    assert!(matches!(
        run("rate(error) > 1% and p95(latency_ms) < 1", &[f], true),
        Outcome::NoData { .. }
    ));
    assert!(matches!(
        run("rate(error) < 1% or p95(latency_ms) < 1", &[f], true),
        Outcome::NoData { .. }
    ));
}

#[test]
fn the_trace_shows_each_comparison_with_its_values() {
    let e = parse("p99(stage_a_latency_ms) <= 2 * p95(stage_a_latency_ms)").unwrap();
    let source = Fake(BTreeMap::from([
        ("p99(stage_a_latency_ms)".into(), 9.0),
        ("p95(stage_a_latency_ms)".into(), 4.0),
    ]));
    let flags = BTreeMap::new();
    let ev = evaluate(
        &e,
        &EvalContext {
            source: &source,
            window: 1,
            at: 0,
            flags: &flags,
            stage: &StageMemory::default(),
            split: None,
        },
    );
    assert_eq!(ev.outcome, Outcome::Fail);
    assert_eq!(
        ev.comparisons,
        vec![CmpTrace {
            left: "p99(stage_a_latency_ms)".into(),
            left_value: Some(9.0),
            op: "<=".into(),
            right: "2 * p95(stage_a_latency_ms)".into(),
            right_value: Some(8.0),
            holds: Some(false),
            unit: None,
            sequential: None,
        }]
    );
    assert_eq!(e.metrics().len(), 2);
}

#[test]
fn errors_name_the_column_and_what_is_wrong() {
    let cases = [
        (
            "p95(latency_ms)",
            1,
            "this is a number, not a condition: compare it, e.g. p95(latency_ms) <= 700ms",
        ),
        (
            "p95(latency_ms) <= 700xs",
            23,
            "unknown unit \"xs\": use ms, s, m, h, d or %",
        ),
        (
            "p1000(latency_ms) < 1",
            1,
            "unknown function \"p1000\": use p50..p99, p999, rate, share, mean, count, sum, max, min, last, per_second, slope, at_entry, fired, not_above, not_below, above, below or promql",
        ),
        ("p95(latency) < 1", 1, "unknown metric \"latency\""),
        (
            "rate(latency_ms) < 1",
            1,
            "\"latency_ms\" is a distribution metric: use a quantile, mean, max, sum or last",
        ),
        (
            "p95(error) < 1",
            1,
            "\"error\" is a ratio metric: use rate(...)",
        ),
        (
            "share(mode, turbo) < 1%",
            1,
            "\"turbo\" is not a value of mode: expected one of full, lite, fallback",
        ),
        (
            "(rate(error) < 1%",
            18,
            "unclosed \"(\" opened at column 1: expected \")\", found the end",
        ),
        (
            "rate(error) < 1% < 2",
            18,
            "comparisons do not chain: write a < b and b < c",
        ),
        (
            "rate(error) < 1% and 5",
            22,
            "\"and\"/\"or\" needs a condition such as x > 0 here, not a number",
        ),
        (
            "rate(error) < 1% 5",
            18,
            "unexpected the number 5 after a complete expression (missing and/or?)",
        ),
        (
            "p95(latency_ms{variant=canary}) < 1",
            24,
            "label values are quoted: variant=\"...\", found \"canary\"",
        ),
        (
            "last(active_contexts) > 0 when live",
            32,
            "unknown flag \"live\" (metrics are read through a function, e.g. last(live))",
        ),
        ("rate(error) <= ", 16, "expected a value, found the end"),
        (
            "not_above(p95(latency_ms{variant=\"c\"}), p50(latency_ms{variant=\"b\"}), 10%)",
            41,
            "not_above( compares like with like: p95 against p50",
        ),
        (
            "not_above(p95(latency_ms), p95(latency_ms), 10%)",
            28,
            "not_above( compares two different reads: select the canary and the baseline, e.g. {variant=\"canary\"}",
        ),
        (
            "not_below(mean(quality{variant=\"c\"}), mean(quality{variant=\"b\"}), 2%)",
            11,
            "not_below( compares a mean only within known bounds: give \"quality\" a range, e.g. range = [0, 1]",
        ),
        (
            "above(max(latency_ms{variant=\"c\"}), max(latency_ms{variant=\"b\"}), 10%)",
            7,
            "above( compares a quantile (p95), a rate or a mean, not max",
        ),
        (
            "above(rate(error{v=\"c\"} offset 1h), rate(error), 1%)",
            7,
            "above( compares since the stage was entered: no offset",
        ),
        (
            "not_above(rate(error{v=\"c\"}), rate(error), x)",
            44,
            "not_above( needs the margin (10% or 0.5%) as a number here, found \"x\"",
        ),
        (
            "not_above(rate(error{v=\"c\"}), rate(error), 1%, 50%)",
            48,
            "not_above( alpha must be above 0 and at most 20%, e.g. 5%",
        ),
        (
            "not_above(rate(error{v=\"c\"}), rate(error), 1%) + 1 > 0",
            1,
            "arithmetic needs a number here, not a condition",
        ),
        ("promql(\"x) < 1", 8, "unclosed string: add the closing \""),
    ];
    for (src, column, message) in cases {
        assert_eq!(errors_at(src), (column, message.to_string()), "{src}");
    }
}

#[test]
fn units_normalise_and_precedence_is_conventional() {
    let n = |src: &str| match parse(src).unwrap().kind {
        Kind::Number(n) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(n("700ms"), 700.0);
    assert_eq!(n("1.5s"), 1500.0);
    assert_eq!(n("5m"), 300_000.0);
    assert_eq!(n("2h"), 7_200_000.0);
    assert!((n("0.75%") - 0.0075).abs() < 1e-12);
    assert_eq!(
        parse("1 + 2 * 3 - 4 / 2 > 0").unwrap().to_string(),
        "1 + 2 * 3 - 4 / 2 > 0"
    );
    assert_eq!(
        parse("(1 + 2) * 3 > 0").unwrap().to_string(),
        "(1 + 2) * 3 > 0"
    );
    assert_eq!(
        parse("1 - (2 - 3) > 0").unwrap().to_string(),
        "1 - (2 - 3) > 0"
    );
    assert_eq!(
        parse("true or false and false").unwrap().to_string(),
        "true or false and false"
    );
    assert_eq!(
        parse("(true or false) and false").unwrap().to_string(),
        "(true or false) and false"
    );
    assert_eq!(
        parse("!(1 > 2) && 1 < 2 || false").unwrap().to_string(),
        "not 1 > 2 and 1 < 2 or false"
    );
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (0u32..10_000).prop_map(|n| Kind::Number(f64::from(n) / 4.0)),
        (
            prop::sample::select(vec![
                "p95",
                "p50",
                "p999",
                "rate",
                "mean",
                "last",
                "per_second"
            ]),
            prop::sample::select(vec![0, 90_000, 1_500, 86_400_000]),
        )
            .prop_map(|(f, offset)| Kind::Metric {
                aggregate: match f {
                    "p95" => Aggregate::Quantile(0.95),
                    "p50" => Aggregate::Quantile(0.5),
                    "p999" => Aggregate::Quantile(0.999),
                    "rate" => Aggregate::Rate,
                    "mean" => Aggregate::Mean,
                    "per_second" => Aggregate::PerSecond,
                    _ => Aggregate::Last,
                },
                metric: "m".into(),
                selector: Selector::from([("variant".to_string(), "canary".to_string())]),
                offset,
            }),
        Just(Kind::Fired("errors-spike".into())),
    ]
    .prop_map(|kind| Expr { kind, column: 1 });
    let num = leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                inner.clone(),
                prop::sample::select(vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div])
            )
                .prop_map(|(a, b, op)| Expr {
                    kind: Kind::Arith(op, Box::new(a), Box::new(b)),
                    column: 1
                }),
            inner.clone().prop_map(|a| Expr {
                kind: Kind::Neg(Box::new(a)),
                column: 1
            }),
            inner.prop_map(|a| Expr {
                kind: Kind::AtEntry(Box::new(a)),
                column: 1
            }),
        ]
    });
    let cmp = (
        num.clone(),
        num,
        prop::sample::select(vec![
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
            CmpOp::Eq,
            CmpOp::Ne,
        ]),
    )
        .prop_map(|(a, b, op)| Expr {
            kind: Kind::Cmp(op, Box::new(a), Box::new(b)),
            column: 1,
        });
    cmp.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone(), prop::bool::ANY).prop_map(|(a, b, and)| Expr {
                kind: Kind::Logic(
                    if and { LogicOp::And } else { LogicOp::Or },
                    Box::new(a),
                    Box::new(b)
                ),
                column: 1
            }),
            inner.clone().prop_map(|a| Expr {
                kind: Kind::Not(Box::new(a)),
                column: 1
            }),
            (inner.clone(), inner).prop_map(|(a, b)| Expr {
                kind: Kind::When(Box::new(a), Box::new(b)),
                column: 1
            }),
        ]
    })
}

fn arith(depth: u32) -> BoxedStrategy<(String, f64)> {
    let leaf = (1u32..1000)
        .prop_map(|n| (n.to_string(), f64::from(n)))
        .boxed();
    if depth == 0 {
        return leaf;
    }
    prop_oneof![
        leaf,
        (arith(depth - 1), arith(depth - 1), 0..3u8).prop_map(|((a, x), (b, y), op)| match op {
            0 => (format!("({a} + {b})"), x + y),
            1 => (format!("({a} - {b})"), x - y),
            _ => (format!("({a} * {b})"), x * y),
        }),
    ]
    .boxed()
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_expression(e in arb_expr()) {
        let text = e.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(back, e, "{}", text);
    }

    #[test]
    fn arithmetic_over_literals_is_exact((text, want) in arith(4)) {
        let e = parse(&format!("{text} == {want}")).unwrap();
        let flags = BTreeMap::new();
        let ev = evaluate(&e, &EvalContext { source: &Fake(BTreeMap::new()), window: 1, at: 0, flags: &flags, stage: &StageMemory::default(), split: None });
        prop_assert_eq!(ev.outcome, Outcome::Pass, "{}", text);
    }

    #[test]
    fn parse_never_panics(s in ".*") {
        let _ = parse(&s);
    }

    #[test]
    fn parse_never_panics_on_grammar_soup(words in prop::collection::vec(
        prop::sample::select(vec!["p95(", "rate(", "m", ")", "{", "}", "v=\"x\"", ",", "<=", "<", "and", "or", "not", "when", "(", "1", "5ms", "%", "*", "-", "/", "\"", "promql(", "share(", "true"]),
        0..20,
    )) {
        let _ = parse(&words.join(" ")).and_then(|e| check(&e, &Plan));
    }
}

/// A gauge that moves in a straight line: `a + b x t` at every read, whatever its window.
struct Line {
    a: f64,
    per_ms: f64,
    /// Slices with no data: reads ending at these times answer nothing.
    gaps: Vec<Millis>,
}

impl MetricSource for Line {
    fn aggregate(
        &self,
        _: &str,
        _: &Selector,
        _: &Aggregate,
        _: Millis,
        at: Millis,
    ) -> Option<f64> {
        (!self.gaps.contains(&at)).then_some(self.a + self.per_ms * at as f64)
    }
}

/// What `slope(last(queue_depth))` reads as a gate sees it: its value, or why there is none.
fn slope_of(line: &Line, window: Millis, at: Millis) -> Result<f64, String> {
    let e = parse("slope(last(queue_depth)) > 0").unwrap();
    check(&e, &Plan).unwrap();
    let ev = evaluate(
        &e,
        &EvalContext {
            source: line,
            window,
            at,
            flags: &BTreeMap::new(),
            stage: &StageMemory::default(),
            split: None,
        },
    );
    match ev.outcome {
        Outcome::NoData { reason } => Err(reason),
        _ => Ok(ev.comparisons[0].left_value.unwrap()),
    }
}

proptest! {
    /// The slope of a straight line is its rise per minute, to float error, wherever and
    /// over whatever window it is read.
    #[test]
    fn slope_of_a_line_is_exact(
        a in -1e6f64..1e6,
        per_minute in -1e4f64..1e4,
        window_slices in 1i64..10_000,
        at in 0i64..10_000_000_000,
    ) {
        let line = Line { a, per_ms: per_minute / 60_000.0, gaps: vec![] };
        let window = window_slices * super::eval::SLOPE_SLICES * 1_000;
        match slope_of(&line, window, at) {
            Ok(s) => prop_assert!((s - per_minute).abs() <= 1e-6 * per_minute.abs().max(1.0), "{s} vs {per_minute}"),
            Err(why) => prop_assert!(false, "{why}"),
        }
    }
}

#[test]
fn slope_needs_three_slices_of_data_and_a_metric() {
    let window = 6 * 60_000;
    let at = 10 * 60_000;
    // Four of six slices answer: still a fit; three missing: no data, and why.
    let line = Line {
        a: 5.0,
        per_ms: 2.0 / 60_000.0,
        gaps: vec![at, at - 60_000],
    };
    assert!(matches!(slope_of(&line, window, at), Ok(s) if (s - 2.0).abs() < 1e-9));
    let line = Line {
        a: 5.0,
        per_ms: 0.0,
        gaps: vec![at, at - 60_000, at - 120_000, at - 180_000],
    };
    match slope_of(&line, window, at) {
        Err(why) => assert!(why.contains("2 of 6 slices"), "{why}"),
        other => panic!("{other:?}"),
    }
    // "queue depth not growing", as a gate reads it.
    assert_eq!(
        run(
            "slope(last(queue_depth)) <= 0",
            &[("last(queue_depth)", 7.0)],
            true
        ),
        PASS
    );
    let (_, message) = errors_at("slope(3) > 0");
    assert!(message.contains("slope needs a metric read"), "{message}");
    let (_, message) = errors_at("slope(slope(last(queue_depth))) > 0");
    assert!(
        message.contains("no at_entry, fired or slope inside it"),
        "{message}"
    );
    // min is a function like max.
    assert_eq!(
        run("min(queue_depth) >= 1", &[("min(queue_depth)", 2.0)], true),
        PASS
    );
}

/// One gauge per queue: `last(queue_depth{queue="..."})` reads that queue's value.
struct Queues(BTreeMap<String, f64>);

impl MetricSource for Queues {
    fn aggregate(
        &self,
        _: &str,
        selector: &Selector,
        _: &Aggregate,
        _: Millis,
        _: Millis,
    ) -> Option<f64> {
        self.0.get(selector.get("queue")?).copied()
    }

    fn label_values(
        &self,
        _: &str,
        _: &Selector,
        label: &str,
        _: Millis,
        _: Millis,
    ) -> Vec<String> {
        if label == "queue" {
            self.0.keys().cloned().collect()
        } else {
            Vec::new()
        }
    }
}

fn over_queues(src: &str, queues: &Queues) -> Evaluation {
    let e = parse(src).unwrap_or_else(|err| panic!("{src}: {err}"));
    check(&e, &Plan).unwrap_or_else(|err| panic!("{src}: {err}"));
    evaluate(
        &e,
        &EvalContext {
            source: queues,
            window: 300_000,
            at: 0,
            flags: &BTreeMap::new(),
            stage: &StageMemory::default(),
            split: None,
        },
    )
}

proptest! {
    /// `all` and `any` agree with evaluating each label value alone.
    #[test]
    fn quantifiers_agree_with_each_value_alone(
        depths in prop::collection::btree_map("[a-e]", 0.0f64..2_000.0, 1..6),
        limit in 0.0f64..2_000.0,
    ) {
        let queues = Queues(depths.clone());
        let alone: Vec<bool> = depths.values().map(|d| *d <= limit).collect();
        let all = over_queues(&format!("all(queue, last(queue_depth) <= {limit})"), &queues);
        let any = over_queues(&format!("any(queue, last(queue_depth) <= {limit})"), &queues);
        let pass = |o: &Outcome| *o == Outcome::Pass;
        prop_assert_eq!(pass(&all.outcome), alone.iter().all(|b| *b));
        prop_assert_eq!(pass(&any.outcome), alone.iter().any(|b| *b));
        // A failing `all` names a queue that fails; a passing `any` one that passes.
        if !pass(&all.outcome) {
            let named = &all.comparisons[0].left;
            let queue = named.split('"').nth(1).unwrap();
            prop_assert!(depths[queue] > limit, "{} named", named);
        }
    }
}

#[test]
fn quantifiers_name_the_offending_value_and_need_values() {
    let queues = Queues(BTreeMap::from([
        ("email".to_string(), 40.0),
        ("voice".to_string(), 1_400.0),
    ]));
    let e = over_queues("any(queue, last(queue_depth) > 1000)", &queues);
    assert_eq!(e.outcome, PASS);
    assert_eq!(e.comparisons.len(), 1);
    assert_eq!(e.comparisons[0].left, "last(queue_depth{queue=\"voice\"})");
    let e = over_queues("all(queue, last(queue_depth) <= 1000)", &queues);
    assert_eq!(e.outcome, FAIL);
    let empty = Queues(BTreeMap::new());
    match over_queues("all(queue, last(queue_depth) <= 1000)", &empty).outcome {
        Outcome::NoData { reason } => assert!(reason.contains("no value of queue"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let (_, message) = errors_at("all(queue, last(queue_depth))");
    assert!(message.contains("needs a condition"), "{message}");
    let (_, message) = errors_at("all(queue, last(queue_depth{queue=\"a\"}) > 1)");
    assert!(message.contains("select on another label"), "{message}");
    let (_, message) = errors_at("all(3, last(queue_depth) > 1)");
    assert!(message.contains("needs a label name first"), "{message}");
}

#[test]
fn comparisons_print_as_they_parse_and_visit_both_reads() {
    for src in [
        "not_above(p95(latency_ms{variant=\"canary\"}), p95(latency_ms{variant=\"baseline\"}), 0.1)",
        "below(rate(cache_hit{variant=\"canary\"}), rate(cache_hit{variant=\"baseline\"}), 0.02, 0.01)",
        "not_above(rate(error{variant=\"canary\"}), rate(error{variant=\"baseline\"}), 0.005) when enabled",
    ] {
        let e = parse(src).unwrap();
        check(&e, &Plan).unwrap_or_else(|err| panic!("{src}: {err}"));
        assert_eq!(e.to_string(), src);
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        assert_eq!(e.metrics().len(), 2, "{src}");
    }
}

#[test]
fn a_comparison_before_its_stage_is_entered_is_not_yet_known() {
    // Nothing to compare before the stage begins: neither trouble nor a pass.
    let src = "not_above(p95(latency_ms{variant=\"canary\"}), p95(latency_ms{variant=\"baseline\"}), 10%)";
    assert!(
        matches!(run(src, &[("latency_ms", 1.0)], true), Outcome::NotYetKnown { reason } if reason.contains("with baseline from the stage's entry"))
    );
}

/// Days are a unit: "same time last week" is `offset 7d`, and the limit the parser states
/// (30 days) can be written as it says.
#[test]
fn days_are_a_unit_and_offsets_reach_thirty_of_them() {
    let e = parse("p95(latency_ms offset 7d) > 100ms").unwrap();
    let read = e.metrics();
    assert_eq!(read[0].offset, 7 * crate::time::DAY);
    assert!(parse("p95(latency_ms offset 30d) > 1").is_ok());
    let (_, message) = errors_at("p95(latency_ms offset 31d) > 1");
    assert!(message.contains("up to 30d"), "{message}");
}
