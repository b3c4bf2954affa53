//! The cost of a sequential comparison against the plain read a gate makes, measured in the
//! same run: `not_above(p95(canary), p95(baseline), 10%)` over an hour-old stage (two arms'
//! buckets merged since entry, two confidence sequences) against `p95(latency_ms{canary})`
//! over a 5-minute window. 200 events a second, 5% to the canary, an hour of them.
//!
//! Run: `cargo bench -p cutover-core --bench compare` (prints `ROW |` lines for `./x bench`).

// Core reads no clock; a benchmark of it must.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cutover_core::expr::{self, EvalContext, StageMemory};
use cutover_core::query::{Aggregate, MetricKind, MetricSource};
use cutover_core::time::{HOUR, MINUTE, Millis, SECOND};
use cutover_core::window::{MetricStore, Sample, SampleValue, StoreConfig};

const T0: Millis = 1_700_000_000_000;

/// An hour of events, each arm spread over `spread` label sets (pods): the store keeps at
/// most 64 per metric, so 64 is the most buckets a comparison can be made to merge.
fn store(spread: u64) -> MetricStore {
    let config = StoreConfig {
        max_lateness: 2 * HOUR,
        ..StoreConfig::default()
    };
    store_of(spread, HOUR, 200, config)
}

/// `span` of `per_second` events before T0, each arm spread over `spread` label sets, the store
/// compacted at T0 (what is older than an hour rolled up into minutes).
fn store_of(spread: u64, span: Millis, per_second: u64, config: StoreConfig) -> MetricStore {
    let config = StoreConfig {
        max_lateness: span + MINUTE,
        ..config
    };
    let mut store = MetricStore::new(
        config,
        [("latency_ms".to_string(), MetricKind::Distribution)],
    );
    let mut x: u64 = 7;
    let mut uniform = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64 / (1u64 << 53) as f64).max(1e-12)
    };
    for s in 0..span / SECOND {
        let ts = T0 - span + s * SECOND;
        for i in 0..per_second {
            // Log-normal latencies around 100 ms, the same for both arms.
            let z = (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
            let variant = if i % 20 == 0 { "canary" } else { "baseline" };
            let pod = ((i / 20) % spread).to_string();
            let sample = Sample {
                metric: "latency_ms".into(),
                labels: [
                    ("variant".to_string(), variant.to_string()),
                    ("pod".to_string(), pod),
                ]
                .into(),
                ts,
                value: SampleValue::Number(100.0 * (0.5 * z).exp()),
            };
            // As a server takes them: at their time, compacting as time passes (older buckets
            // roll up into minutes and ten minutes).
            store.record(&sample, ts).ok();
        }
    }
    store.compact(T0);
    store
}

/// The comparison every row here times: canary's p95 against baseline's, 10% worse at most.
const COMPARE: &str =
    r#"not_above(p95(latency_ms{variant="canary"}), p95(latency_ms{variant="baseline"}), 10%)"#;

/// What a gate with a 5 min window evaluates at T0 against `source`.
fn context<'a>(
    source: &'a MetricStore,
    flags: &'a BTreeMap<String, cutover_core::flag::FlagValue>,
    stage: &'a StageMemory,
) -> EvalContext<'a> {
    EvalContext {
        source,
        window: 5 * MINUTE,
        at: T0,
        flags,
        stage,
        split: None,
    }
}

/// The median of `runs` timings of `f`, each over `inner` calls.
fn time(runs: usize, inner: u32, mut f: impl FnMut()) -> Duration {
    let mut all: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..inner {
                f();
            }
            start.elapsed() / inner
        })
        .collect();
    all.sort();
    all[runs / 2]
}

fn main() {
    for spread in [1, 32] {
        measure(spread);
    }
    quantifiers();
    gate_line();
    long_stage();
}

/// How long the long stage has run.
const STAGE: Millis = 30 * HOUR;

/// The comparison over a 30 h stage (100 events a second, 8 label sets per arm), whose first
/// 29 h are rolled-up minutes and ten minutes with packed sketches: as evaluated every second
/// (their merge remembered from the second before) against merging them afresh (the first
/// evaluation after a roll-up), and the same store keeping every sketch dense.
fn long_stage() {
    let text = COMPARE;
    let compare = expr::parse(text).unwrap();
    let flags = BTreeMap::new();
    let stage = StageMemory {
        entered_at: Some(T0 - STAGE),
        ..StageMemory::default()
    };
    let evaluate = |store: &MetricStore| {
        let cx = context(store, &flags, &stage);
        black_box(expr::evaluate(&compare, &cx));
    };
    let config = |pack_closed: bool| StoreConfig {
        pack_closed,
        ..StoreConfig::default()
    };
    let store = store_of(8, STAGE, 100, config(true));
    evaluate(&store);
    let remembered = time(11, 5, || evaluate(&store));
    // A copy of the store remembers nothing: merged afresh, the copy made outside the timing.
    let mut afresh: Vec<Duration> = (0..7)
        .map(|_| {
            let copy = store.clone();
            let start = Instant::now();
            evaluate(&copy);
            start.elapsed()
        })
        .collect();
    afresh.sort();
    let afresh = afresh[afresh.len() / 2];
    let dense = store_of(8, STAGE, 100, config(false));
    evaluate(&dense);
    let dense = time(11, 5, || evaluate(&dense));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "ROW | not_above(p95 canary, p95 baseline) over a 30 h stage, 29 h rolled up (8 label sets per arm) | {:.0} µs | merged afresh: {:.0} µs | {:.2}x | evaluated once a second per gate: well under 10 ms",
        us(remembered),
        us(afresh),
        us(remembered) / us(afresh).max(1e-9)
    );
    println!(
        "ROW | the same with every sketch dense | {:.0} µs packed | {:.0} µs dense | {:.2}x | about 1x",
        us(remembered),
        us(dense),
        us(remembered) / us(dense).max(1e-9)
    );
}

/// A gate's own line on a live chart (its 5 min p95 at each of 90 10 s points) against the
/// chart's plain p95 points over the same 15 minutes, on the hour of 200 events a second.
fn gate_line() {
    let store = store(1);
    let all = cutover_core::query::Selector::new();
    let p95 = Aggregate::Quantile(0.95);
    let frame = (T0 - 15 * MINUTE + 10 * SECOND, T0, 10 * SECOND);
    let (line, plain) = (
        time(11, 5, || {
            black_box(store.windowed("latency_ms", &all, &p95, 5 * MINUTE, frame));
        }),
        time(11, 5, || {
            black_box(store.series("latency_ms", &all, &p95, frame.0, frame.1, frame.2));
        }),
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "ROW | a gate's 5 min line on a live chart (90 points, windows slid over step merges) | {:.0} µs | the chart's plain p95 points: {:.0} µs | {:.1}x | drawn once a second per gate: well under 10 ms",
        us(line),
        us(plain),
        us(line) / us(plain).max(1e-9)
    );
}

/// `any(endpoint, rate(available) < 99%)` over 64 endpoints against the same test of one
/// endpoint, on 5 minutes of 200 events a second (issue 31's figure).
fn quantifiers() {
    let mut store = MetricStore::new(
        StoreConfig::default(),
        [("available".to_string(), MetricKind::Ratio)],
    );
    for s in 0..(5 * MINUTE) / SECOND {
        let ts = T0 - 5 * MINUTE + s * SECOND;
        for i in 0..200u64 {
            let sample = Sample {
                metric: "available".into(),
                labels: [("endpoint".to_string(), format!("e-{}", i % 64))].into(),
                ts,
                value: SampleValue::Flag(i % 250 != 0),
            };
            store.record(&sample, T0).ok();
        }
    }
    let flags = BTreeMap::new();
    let stage = StageMemory::default();
    let cx = context(&store, &flags, &stage);
    let any = expr::parse("any(endpoint, rate(available) < 99%)").unwrap();
    let one = expr::parse(r#"rate(available{endpoint="e-0"}) < 99%"#).unwrap();
    let (many, single) = (
        time(21, 20, || {
            black_box(expr::evaluate(&any, &cx));
        }),
        time(21, 20, || {
            black_box(expr::evaluate(&one, &cx));
        }),
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "ROW | any(endpoint, rate(available) < 99%) over 64 endpoints, 5 min | {:.0} µs | the same test of one endpoint: {:.0} µs | {:.1}x | evaluated once a second per gate: well under 10 ms",
        us(many),
        us(single),
        us(many) / us(single).max(1e-9)
    );
}

fn measure(spread: u64) {
    let store = store(spread);
    let flags = BTreeMap::new();
    let stage = StageMemory {
        entered_at: Some(T0 - HOUR),
        ..StageMemory::default()
    };
    let text = COMPARE;
    let compare = expr::parse(text).unwrap();
    let cx = context(&store, &flags, &stage);
    let canary = [("variant".to_string(), "canary".to_string())].into();
    let plain = time(21, 20, || {
        black_box(store.aggregate(
            "latency_ms",
            &canary,
            &Aggregate::Quantile(0.95),
            5 * MINUTE,
            T0,
        ));
    });
    let sequential = time(21, 20, || {
        black_box(expr::evaluate(&compare, &cx));
    });
    // What the evaluator also draws every second: the comparison's chart over 15 minutes.
    let plan = cutover_core::plan::parse(
        "b.toml",
        &format!(
            "[rollout]\nid = \"b\"\ntitle = \"B\"\n[[stage]]\nid = \"c\"\ntraffic = 5\n\
             [[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\nunit = \"ms\"\n\
             [[gate]]\nid = \"g\"\nexpr = '{text}'\nwindow = \"5m\"\nhold = \"5m\"\n"
        ),
    )
    .unwrap();
    let chart = &cutover_core::chart::comparison_charts(&plan)[0];
    let drawn = time(11, 5, || {
        black_box(cutover_core::chart::comparison_series(
            chart,
            &store,
            Some(T0 - HOUR),
            T0 - 15 * MINUTE,
            T0,
            10 * SECOND,
        ));
    });
    let outcome = expr::evaluate(&compare, &cx).outcome;
    println!("comparison over a 1 h stage, {spread} label set(s) per arm: {outcome:?}");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let sets = if spread == 1 {
        String::new()
    } else {
        format!(", {spread} label sets per arm")
    };
    println!(
        "ROW | not_above(p95 canary, p95 baseline) over a 1 h stage (720k events{sets}) | {:.0} µs | p95(canary) over 5 min: {:.0} µs | {:.1}x | evaluated once a second per gate: well under 10 ms",
        us(sequential),
        us(plain),
        us(sequential) / us(plain).max(1e-9)
    );
    println!(
        "ROW | its chart over 15 min (interval since entry, 90 steps{sets}) | {:.0} µs | p95(canary) over 5 min: {:.0} µs | {:.1}x | drawn once a second per gate: well under 10 ms",
        us(drawn),
        us(plain),
        us(drawn) / us(plain).max(1e-9)
    );
}
