use proptest::prelude::*;
use sketches_ddsketch::{Config, DDSketch};

use super::*;
use crate::window::RELATIVE_ERROR;

/// The bucket a positive value falls in at `scale`: `(b^i, b^(i+1)]`.
fn index_of(scale: i32, v: f64) -> i32 {
    ((v.log2() * 2f64.powi(scale)).ceil() - 1.0) as i32
}

fn exp(scale: i32, values: &[f64]) -> Histogram {
    let indexes: Vec<i32> = values.iter().map(|&v| index_of(scale, v)).collect();
    let offset = *indexes.iter().min().unwrap();
    let top = *indexes.iter().max().unwrap();
    let mut counts = vec![0u64; (top - offset + 1) as usize];
    for i in indexes {
        counts[(i - offset) as usize] += 1;
    }
    Histogram {
        count: values.len() as u64,
        sum: Some(values.iter().sum()),
        min: None,
        max: None,
        buckets: Buckets::Exponential(ExpBuckets {
            scale,
            zero_count: 0,
            offset,
            counts,
        }),
    }
}

fn sketch_of(values: &[(f64, u64)]) -> DDSketch {
    let mut s = DDSketch::new(Config::new(RELATIVE_ERROR, 2048, 1e-9));
    for &(v, n) in values {
        s.add_with_count(v, n);
    }
    s
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    // The sketch's rank rule: the value at rank floor(q * (n - 1)).
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// A small seeded generator (xorshift), so the simulation is the same on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Log-normal latencies around 40 ms with a long tail.
    fn latency(&mut self) -> f64 {
        let (u1, u2) = (self.next().max(1e-12), self.next());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (40f64.ln() + 0.8 * z).exp()
    }
}

proptest! {
    #[test]
    fn a_bucket_value_is_within_the_stated_error_of_every_value_in_it(
        scale in -3i32..=12,
        v in 1e-6f64..1e9,
    ) {
        let i = index_of(scale, v);
        let rep = exp_bucket_value(scale, i);
        let err = ((rep - v) / v).abs();
        prop_assert!(err <= exp_bucket_error(scale) * (1.0 + 1e-9) + 1e-12,
            "scale {scale} v {v} rep {rep} err {err}");
    }

    #[test]
    fn rescaling_keeps_every_count_and_puts_it_where_its_values_are(
        scale in 0i32..=10,
        down in 0i32..=6,
        values in prop::collection::vec(1e-3f64..1e6, 1..200),
    ) {
        let Buckets::Exponential(e) = exp(scale, &values).buckets else { unreachable!() };
        let coarse = e.at_scale(scale - down).unwrap();
        prop_assert_eq!(coarse.counts.iter().sum::<u64>(), values.len() as u64);
        let Buckets::Exponential(direct) = exp(scale - down, &values).buckets else { unreachable!() };
        // Same buckets as bucketing the values at the coarse scale directly (trailing and
        // leading zeros aside).
        let nonzero = |b: &ExpBuckets| -> Vec<(i64, u64)> {
            b.counts.iter().enumerate().filter(|(_, n)| **n > 0)
                .map(|(k, n)| (i64::from(b.offset) + k as i64, *n)).collect()
        };
        prop_assert_eq!(nonzero(&coarse), nonzero(&direct));
    }

    #[test]
    fn cumulative_points_give_back_what_happened_between_them(
        first in prop::collection::vec(1e-2f64..1e4, 1..100),
        second in prop::collection::vec(1e-2f64..1e4, 0..100),
    ) {
        let scale = 6;
        let mut deltas = Deltas::new(8);
        let all: Vec<f64> = first.iter().chain(&second).copied().collect();
        let a = PointValue::Histogram(exp(scale, &first));
        let b = PointValue::Histogram(exp(scale, &all));
        prop_assert_eq!(deltas.delta(1, 100, 200, a, 50, 0), Delta::New(PointValue::Histogram(exp(scale, &first))));
        let Delta::New(PointValue::Histogram(d)) = deltas.delta(1, 100, 300, b, 50, 0) else {
            panic!("no delta");
        };
        prop_assert_eq!(d.count, second.len() as u64);
        let mut got: Vec<(f64, u64)> = d.values();
        let mut want: Vec<(f64, u64)> = if second.is_empty() { Vec::new() } else { exp(scale, &second).values() };
        got.sort_by(|x, y| x.0.total_cmp(&y.0));
        want.sort_by(|x, y| x.0.total_cmp(&y.0));
        prop_assert_eq!(got, want);
    }
}

/// Seeded simulation: for each scale, 200 runs of 2,000 latencies each, p50/p95/p99 from
/// the exponential buckets through the sketch against the exact quantile. Every run must be
/// within the bound the module states; the worst error seen is printed for the docs.
#[test]
fn quantiles_from_exponential_buckets_stay_within_the_stated_bound() {
    let mut rng = Rng(0x5eed_cafe);
    for scale in [2, 3, 5, 8] {
        let bound = (1.0 + exp_bucket_error(scale)) * (1.0 + RELATIVE_ERROR) - 1.0;
        let mut worst = 0f64;
        for _ in 0..200 {
            let mut values: Vec<f64> = (0..2000).map(|_| rng.latency()).collect();
            let sketch = sketch_of(&exp(scale, &values).values());
            values.sort_by(f64::total_cmp);
            for q in [0.5, 0.95, 0.99] {
                let exact = exact_quantile(&values, q);
                let got = sketch.quantile(q).unwrap().unwrap();
                let err = ((got - exact) / exact).abs();
                worst = worst.max(err);
                assert!(
                    err <= bound + 1e-9,
                    "scale {scale} q {q}: {got} vs {exact} ({err} > {bound})"
                );
            }
        }
        println!("scale {scale}: worst relative error {worst:.4} (bound {bound:.4})");
    }
}

#[test]
fn explicit_buckets_use_their_bounds_and_the_points_extremes() {
    let h = Histogram {
        count: 6,
        sum: None,
        min: Some(2.0),
        max: Some(900.0),
        buckets: Buckets::Explicit(ExplicitBuckets {
            bounds: vec![10.0, 100.0],
            counts: vec![1, 2, 3],
        }),
    };
    let v = h.values();
    assert_eq!(v.len(), 3);
    assert!((v[0].0 - 2.0 * 2.0 * 10.0 / 12.0).abs() < 1e-9, "{v:?}");
    assert!((v[1].0 - 2.0 * 10.0 * 100.0 / 110.0).abs() < 1e-9, "{v:?}");
    assert!(
        (v[2].0 - 2.0 * 100.0 * 900.0 / 1000.0).abs() < 1e-9,
        "{v:?}"
    );
    assert_eq!(v.iter().map(|x| x.1).sum::<u64>(), 6);
}

#[test]
fn a_counter_reset_counts_what_came_after_it_not_a_negative_or_a_spike() {
    let mut d = Deltas::new(16);
    let n = PointValue::Number;
    // Met long after it started: history, not news.
    assert_eq!(
        d.delta(7, 1_000, 10_000, n(5_000.0), 9_000, 0),
        Delta::Baseline
    );
    assert_eq!(
        d.delta(7, 1_000, 11_000, n(5_040.0), 9_000, 0),
        Delta::New(n(40.0))
    );
    // A retry of the same point counts nothing.
    assert_eq!(
        d.delta(7, 1_000, 11_000, n(5_040.0), 9_000, 0),
        Delta::Stale
    );
    // The sender restarted: a new start time, a small total, all of it new.
    assert_eq!(
        d.delta(7, 11_500, 12_000, n(12.0), 9_000, 0),
        Delta::New(n(12.0))
    );
    assert_eq!(
        d.delta(7, 11_500, 13_000, n(20.0), 9_000, 0),
        Delta::New(n(8.0))
    );
    // A drop with no start time given is a reset as well.
    assert_eq!(d.delta(7, 0, 14_000, n(3.0), 9_000, 0), Delta::New(n(3.0)));
    // A stream that started recently counts from its start.
    assert_eq!(
        d.delta(8, 9_500, 10_000, n(4.0), 9_000, 0),
        Delta::New(n(4.0))
    );
}

#[test]
fn a_cumulative_histogram_that_lowers_its_scale_still_gives_deltas() {
    let mut d = Deltas::new(4);
    let early = vec![10.0, 20.0, 30.0];
    let mut later = early.clone();
    later.extend([5_000.0, 40.0]);
    assert!(matches!(
        d.delta(1, 10, 20, PointValue::Histogram(exp(8, &early)), 0, 0),
        Delta::New(_)
    ));
    let Delta::New(PointValue::Histogram(h)) =
        d.delta(1, 10, 30, PointValue::Histogram(exp(4, &later)), 0, 0)
    else {
        panic!()
    };
    assert_eq!(h.count, 2);
    let values = h.values();
    assert_eq!(values.iter().map(|v| v.1).sum::<u64>(), 2);
    assert!(
        values
            .iter()
            .any(|v| (v.0 / 5_000.0 - 1.0).abs() < exp_bucket_error(4))
    );
}

#[test]
fn forgotten_streams_are_the_least_recently_seen() {
    let mut d = Deltas::new(2);
    let n = PointValue::Number;
    d.delta(1, 0, 1, n(1.0), 1, 10);
    d.delta(2, 0, 1, n(1.0), 1, 20);
    d.delta(1, 0, 2, n(2.0), 1, 30);
    d.delta(3, 0, 1, n(1.0), 1, 40);
    assert_eq!(d.len(), 2);
    // Stream 2 was forgotten: its next point is a first point again.
    assert_eq!(d.delta(2, 0, 2, n(9.0), 1, 50), Delta::Baseline);
    assert_eq!(d.delta(3, 0, 2, n(4.0), 1, 60), Delta::New(n(3.0)));
}

#[test]
fn units_convert_within_a_family_and_nowhere_else() {
    assert_eq!(unit_factor("s", Some("ms")), Some(1000.0));
    assert_eq!(unit_factor("us", Some("ms")), Some(0.001));
    assert_eq!(unit_factor("ms", Some("ms")), Some(1.0));
    assert_eq!(unit_factor("", Some("ms")), Some(1.0));
    assert_eq!(unit_factor("{request}", Some("requests")), Some(1.0));
    assert_eq!(unit_factor("KiBy", Some("By")), Some(1024.0));
    assert_eq!(unit_factor("1", Some("%")), Some(100.0));
    assert_eq!(unit_factor("By", Some("ms")), None);
    assert_eq!(unit_factor("s", Some("%")), None);
}
