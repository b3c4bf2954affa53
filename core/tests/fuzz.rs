//! Fuzzing of the parsers a plan author or a client feeds: the plan file and the expression
//! language. Inputs are generated from the real plans and the language's own tokens (so they
//! reach deep into validation and evaluation, not only the first character), then mutated.
//! The property is the same everywhere: an answer (a value or an error), never a panic.
//! `PROPTEST_CASES=100000 cargo test -p cutover-core --test fuzz` runs a long campaign
//! (`./x fuzz` does); the default keeps `./x test` quick. Inputs that once panicked are kept
//! below as plain tests.

use std::collections::BTreeMap;

use cutover_core::expr::{self, EvalContext};
use cutover_core::plan;
use cutover_core::query::{MetricKind, MetricSource};
use cutover_core::time::{MINUTE, Millis, SECOND};
use cutover_core::window::{MetricStore, Sample, SampleValue, StoreConfig};
use proptest::prelude::*;

const PLANS: [&str; 5] = [
    include_str!("../../plans/spiralogic.toml"),
    include_str!("../../plans/lens-v1.toml"),
    include_str!("../../plans/hal9-shadow.toml"),
    include_str!("../../plans/pags-cutover.toml"),
    include_str!("../../plans/semantic-mirror.toml"),
];

/// Tokens of the expression language, with values at the edges of what numbers and
/// durations can hold.
const TOKENS: &[&str] = &[
    "p95(",
    "p50(",
    "p99(",
    "p999(",
    "p0(",
    "p100(",
    "mean(",
    "count(",
    "rate(",
    "share(",
    "last(",
    "sum(",
    "promql(\"up\")",
    "latency_ms",
    "error",
    "mode",
    "cache_hit",
    "ctx",
    "{variant=\"canary\"}",
    "{variant=\"baseline\"}",
    "{",
    "}",
    "=",
    "\"",
    ",",
    "(",
    ")",
    "\"fallback\"",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "ms",
    "s",
    "m",
    "h",
    "d",
    "0",
    "1",
    "1.10",
    "700",
    "9223372036854775807",
    "1e308",
    "-1e308",
    "NaN",
    "inf",
    "0.0000001",
    "and",
    "or",
    "not",
    "when",
    "enabled",
    "true",
    "false",
    " ",
    "  ",
];

fn tokens() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat())
}

/// A real plan with lines dropped, duplicated or swapped, and bytes replaced.
fn mutated_plan() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&PLANS[..]),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..5, any::<u8>()), 0..8),
    )
        .prop_map(|(text, edits)| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            for (at, kind, byte) in edits {
                if lines.is_empty() {
                    break;
                }
                let i = at.index(lines.len());
                match kind {
                    0 => {
                        lines.remove(i);
                    }
                    1 => {
                        let copy = lines[i].clone();
                        lines.insert(i, copy);
                    }
                    2 => {
                        let j = (i + 1) % lines.len();
                        lines.swap(i, j);
                    }
                    3 => {
                        // A value replaced by an extreme one.
                        if let Some((key, _)) = lines[i].split_once('=') {
                            let extreme = [
                                "0",
                                "-1",
                                "1e400",
                                "\"\"",
                                "\"999999999999d\"",
                                "[]",
                                "\"x\"",
                            ];
                            lines[i] = format!("{key}= {}", extreme[byte as usize % extreme.len()]);
                        }
                    }
                    _ => {
                        let mut bytes = lines[i].clone().into_bytes();
                        if !bytes.is_empty() {
                            let k = byte as usize % bytes.len();
                            bytes[k] = byte;
                        }
                        lines[i] = String::from_utf8_lossy(&bytes).into_owned();
                    }
                }
            }
            lines.join("\n")
        })
}

fn store() -> MetricStore {
    let mut s = MetricStore::new(
        StoreConfig::default(),
        [
            ("latency_ms".to_string(), MetricKind::Distribution),
            ("error".to_string(), MetricKind::Ratio),
            ("ctx".to_string(), MetricKind::Gauge),
        ],
    );
    let at = 1_700_000_000_000;
    for i in 0..50 {
        let mut labels = BTreeMap::new();
        labels.insert(
            "variant".to_string(),
            if i % 2 == 0 { "canary" } else { "baseline" }.to_string(),
        );
        let _ = s.record(
            &Sample {
                metric: "latency_ms".into(),
                labels,
                ts: at - i * SECOND,
                value: SampleValue::Number(i as f64 * 10.0),
            },
            at,
        );
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_expression_text_parses_or_errs_and_evaluates_without_panicking(
        text in prop_oneof![tokens(), ".{0,80}"],
        window in prop_oneof![Just(MINUTE), any::<i64>()],
        at in prop_oneof![Just(1_700_000_000_000i64), any::<i64>()],
    ) {
        if let Ok(e) = expr::parse(&text) {
            let source = store();
            let flags = BTreeMap::new();
            let cx = EvalContext { source: &source as &dyn MetricSource, window, at, flags: &flags, stage: &expr::StageMemory::default(), split: None };
            let _ = expr::evaluate(&e, &cx);
            // What it prints parses again.
            prop_assert!(expr::parse(&e.to_string()).is_ok(), "{} printed as {}", text, e);
        }
    }

    #[test]
    fn any_mutated_plan_parses_or_errs_without_panicking(text in mutated_plan()) {
        if let Ok(p) = plan::parse("fuzz.toml", &text) {
            // A plan that validates compiles, and its gates evaluate.
            let compiled = cutover_core::gates::Compiled::new(&p);
            prop_assert!(compiled.is_ok(), "a validated plan did not compile: {:?}", compiled.err());
        }
    }

    #[test]
    fn arbitrary_text_as_a_plan_never_panics(text in ".{0,400}") {
        let _ = plan::parse("fuzz.toml", &text);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

#[test]
fn a_quantile_of_a_metric_with_no_data_is_no_data_not_a_panic() {
    let e = expr::parse("p95(latency_ms{variant=\"nobody\"}) <= 700ms").unwrap();
    let source = store();
    let flags = BTreeMap::new();
    let cx = EvalContext {
        source: &source as &dyn MetricSource,
        window: Millis::MAX,
        at: Millis::MIN,
        flags: &flags,
        stage: &expr::StageMemory::default(),
        split: None,
    };
    let _ = expr::evaluate(&e, &cx);
}
