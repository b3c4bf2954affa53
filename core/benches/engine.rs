//! The metric engine against the naive baseline, measured in the same run:
//! - recording one event into a window vs pushing it onto a `Vec`;
//! - p95 over a 1 h window (360 buckets, 360k events) vs sorting the `Vec` for the exact p95;
//! - evaluating every gate and trigger of the largest example plan (lens-v1).
//!
//! Run: `cargo bench -p cutover-core --bench engine`. Ratios are what matter: absolute times
//! depend on the machine.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use cutover_core::gates::{Compiled, Memory, evaluate};
use cutover_core::query::{Aggregate, MetricKind, MetricSource, Selector};
use cutover_core::time::{HOUR, Millis};
use cutover_core::window::{MetricStore, Sample, SampleValue, StoreConfig};

const T0: Millis = 1_700_000_000_000;
const EVENTS: i64 = 360_000;

fn latencies() -> impl Iterator<Item = (Millis, f64)> {
    // Deterministic, spread over an hour, long-tailed.
    (0..EVENTS).map(|i| {
        (
            T0 - HOUR + i * HOUR / EVENTS,
            50.0 + ((i * 7919) % 1000) as f64 * (1.0 + (i % 13) as f64 / 4.0),
        )
    })
}

fn store_with(kinds: impl IntoIterator<Item = (String, MetricKind)>) -> MetricStore {
    let config = StoreConfig {
        max_lateness: 2 * HOUR,
        ..StoreConfig::default()
    };
    MetricStore::new(config, kinds)
}

fn latency(ts: Millis, v: f64) -> Sample {
    Sample {
        metric: "latency_ms".into(),
        labels: BTreeMap::new(),
        ts,
        value: SampleValue::Number(v),
    }
}

fn bench(c: &mut Criterion) {
    let kinds = || [("latency_ms".to_string(), MetricKind::Distribution)];
    let mut group = c.benchmark_group("record one event");
    let mut store = store_with(kinds());
    let mut i = 0i64;
    group.bench_function("window (10 s DDSketch buckets)", |b| {
        b.iter(|| {
            i += 1;
            let ts = T0 + (i % 600_000);
            store
                .record(black_box(&latency(ts, (i % 997) as f64)), ts)
                .ok();
        })
    });
    let mut vec: Vec<(Millis, f64)> = Vec::new();
    group.bench_function("baseline: push onto a Vec", |b| {
        b.iter(|| {
            i += 1;
            vec.push(black_box((T0 + i, (i % 997) as f64)));
            if vec.len() > 1_000_000 {
                vec.clear();
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("p95 over 1 h (360k events)");
    let mut store = store_with(kinds());
    for (ts, v) in latencies() {
        store.record(&latency(ts, v), T0).ok();
    }
    let all = Selector::new();
    group.bench_function("window: merge 360 bucket sketches", |b| {
        b.iter(|| store.aggregate("latency_ms", &all, &Aggregate::Quantile(0.95), HOUR, T0))
    });
    let raw: Vec<(Millis, f64)> = latencies().collect();
    group.bench_function("baseline: filter + sort the Vec", |b| {
        b.iter_batched(
            || raw.clone(),
            |events| {
                let mut values: Vec<f64> = events
                    .into_iter()
                    .filter(|(t, _)| *t > T0 - HOUR)
                    .map(|(_, v)| v)
                    .collect();
                values.sort_by(f64::total_cmp);
                values[(0.95 * (values.len() as f64 - 1.0)) as usize]
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let text = include_str!("../../plans/lens-v1.toml");
    let plan = cutover_core::plan::parse("lens-v1.toml", text).unwrap();
    let compiled = Compiled::new(&plan).unwrap();
    let mut store = store_with(plan.metrics.iter().map(|m| (m.id.clone(), m.kind)));
    for i in 0..36_000i64 {
        let ts = T0 - HOUR + i * 100;
        let variant = if i % 2 == 0 { "canary" } else { "baseline" };
        for m in &plan.metrics {
            let value = match m.kind {
                MetricKind::Ratio => SampleValue::Flag(i % 50 != 0),
                _ => SampleValue::Number(1.0 + (i % 300) as f64),
            };
            let labels = BTreeMap::from([("variant".to_string(), variant.to_string())]);
            store
                .record(
                    &Sample {
                        metric: m.id.clone(),
                        labels,
                        ts,
                        value,
                    },
                    T0,
                )
                .ok();
        }
    }
    let mut memory = Memory::default();
    let (gates, triggers) = (plan.gates.len(), plan.triggers.len());
    c.bench_function(
        &format!("evaluate lens-v1 ({gates} gates + {triggers} triggers)"),
        |b| {
            b.iter(|| {
                evaluate(
                    &plan,
                    &compiled,
                    &mut memory,
                    &store,
                    cutover_core::gates::Moment {
                        stage: Some("stage-1"),
                        entered_at: Some(T0),
                        armed: true,
                        at: T0,
                    },
                )
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
