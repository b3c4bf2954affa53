//! Metric windows: exactness of merges, the stated error bound, lateness, retention, memory.

use proptest::prelude::*;

use super::*;

const T0: Millis = 1_700_000_000_000;

fn store() -> MetricStore {
    MetricStore::new(
        StoreConfig::default(),
        [
            ("latency_ms".to_string(), MetricKind::Distribution),
            ("error".to_string(), MetricKind::Ratio),
            ("mode".to_string(), MetricKind::Category),
            ("reads".to_string(), MetricKind::Counter),
            ("contexts".to_string(), MetricKind::Gauge),
        ],
    )
}

fn sample(metric: &str, ts: Millis, value: SampleValue) -> Sample {
    Sample {
        metric: metric.into(),
        labels: BTreeMap::new(),
        ts,
        value,
    }
}

fn latency(ts: Millis, v: f64) -> Sample {
    sample("latency_ms", ts, SampleValue::Number(v))
}

fn all() -> Selector {
    Selector::new()
}

/// The exact quantile with the sketch's rank rule: sorted[floor(q * (n - 1))].
fn exact(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[(q * (sorted.len() as f64 - 1.0)) as usize]
}

#[test]
fn no_samples_is_no_data_never_zero() {
    let s = store();
    for agg in [
        Aggregate::Quantile(0.95),
        Aggregate::Rate,
        Aggregate::Count,
        Aggregate::Sum,
        Aggregate::Last,
    ] {
        assert_eq!(
            s.aggregate("latency_ms", &all(), &agg, 5 * MINUTE, T0),
            None,
            "{agg:?}"
        );
    }
}

#[test]
fn each_kind_answers_its_aggregates() {
    let mut s = store();
    for i in 0..100 {
        let ts = T0 - i * SECOND;
        s.record(&sample("error", ts, SampleValue::Flag(i % 20 == 0)), T0)
            .unwrap();
        let mode = if i % 10 == 0 { "fallback" } else { "full" };
        s.record(&sample("mode", ts, SampleValue::Category(mode.into())), T0)
            .unwrap();
        s.record(&sample("reads", ts, SampleValue::Number(2.0)), T0)
            .unwrap();
        s.record(&sample("contexts", ts, SampleValue::Number(i as f64)), T0)
            .unwrap();
    }
    let w = 5 * MINUTE;
    assert_eq!(
        s.aggregate("error", &all(), &Aggregate::Rate, w, T0),
        Some(0.05)
    );
    assert_eq!(
        s.aggregate("mode", &all(), &Aggregate::Share("fallback".into()), w, T0),
        Some(0.1)
    );
    assert_eq!(
        s.aggregate("reads", &all(), &Aggregate::Sum, w, T0),
        Some(200.0)
    );
    assert_eq!(
        s.aggregate("contexts", &all(), &Aggregate::Last, w, T0),
        Some(0.0),
        "latest ts wins"
    );
    assert_eq!(
        s.aggregate("contexts", &all(), &Aggregate::Max, w, T0),
        Some(99.0)
    );
    // The smallest, across the window's buckets (merged as max is).
    assert_eq!(
        s.aggregate("contexts", &all(), &Aggregate::Min, w, T0),
        Some(0.0)
    );
    // A minute ending 30 s ago: its 10 s buckets reach back to samples 21-29 s old in the
    // bucket it ends in, never to the newer ones.
    let older = s
        .aggregate(
            "contexts",
            &all(),
            &Aggregate::Min,
            MINUTE,
            T0 - 30 * SECOND,
        )
        .unwrap();
    assert!((20.0..=30.0).contains(&older), "{older}");
}

#[test]
fn wrong_values_are_refused_with_the_metric_named() {
    let mut s = store();
    let cases = [
        sample("nope", T0, SampleValue::Number(1.0)),
        sample("latency_ms", T0, SampleValue::Number(-1.0)),
        sample("latency_ms", T0, SampleValue::Number(f64::NAN)),
        sample("latency_ms", T0, SampleValue::Flag(true)),
        sample("error", T0, SampleValue::Number(1.0)),
    ];
    for c in cases {
        assert!(s.record(&c, T0).is_err(), "{c:?}");
    }
    assert!(matches!(
        s.record(&latency(T0 + 11 * SECOND, 1.0), T0),
        Err(RecordError::Future { .. })
    ));
}

#[test]
fn lateness_boundary_lands_or_is_counted_as_dropped() {
    let mut s = store();
    s.record(&latency(T0 - 5 * MINUTE, 10.0), T0).unwrap();
    let late = s.record(&latency(T0 - 5 * MINUTE - 1, 10.0), T0);
    assert!(matches!(late, Err(RecordError::Dropped { .. })));
    assert_eq!(s.dropped("latency_ms"), 1);
    assert_eq!(
        s.aggregate("latency_ms", &all(), &Aggregate::Count, 10 * MINUTE, T0),
        Some(1.0)
    );
}

#[test]
fn a_window_covers_every_fine_bucket_that_overlaps_it() {
    let mut s = store();
    let then = T0 - 5 * MINUTE;
    s.record(&latency(then - 10 * SECOND, 1.0), then).unwrap();
    s.record(&latency(then, 2.0), then).unwrap();
    s.record(&latency(then + 10 * SECOND, 3.0), then + 10 * SECOND)
        .unwrap();
    // [T0 - 5m - 10s, T0 - 5m) ends where the window (T0 - 5m, T0] begins: out.
    assert_eq!(
        s.aggregate("latency_ms", &all(), &Aggregate::Count, 5 * MINUTE, T0),
        Some(2.0)
    );
    // A window shorter than a bucket still sees the bucket being filled.
    s.record(&latency(T0 + 2 * SECOND, 4.0), T0 + 5 * SECOND)
        .unwrap();
    let short = s.aggregate(
        "latency_ms",
        &all(),
        &Aggregate::Max,
        3 * SECOND,
        T0 + 5 * SECOND,
    );
    assert_eq!(short, Some(4.0));
}

#[test]
fn rollup_keeps_an_hour_window_the_same_and_old_data_is_evicted() {
    let mut s = store();
    let mut values = Vec::new();
    // One sample every 5 s for 2 h, always recorded at its own time.
    let start = T0 - 2 * HOUR;
    for i in 0..(2 * 720) {
        let ts = start + i * 5 * SECOND;
        let v = 50.0 + (i % 97) as f64 * 3.0;
        values.push((ts, v));
        s.record(&latency(ts, v), ts).unwrap();
    }
    let now = start + 2 * HOUR;
    s.compact(now);
    // At its old edge the window (now - 1h, now] can take in one more 10 s bucket (it overlaps
    // the edge) or, where it reaches rolled-up minutes, leave out the minute the edge falls in.
    let exact_count = values
        .iter()
        .filter(|(t, _)| *t > now - HOUR && *t <= now)
        .count() as f64;
    let count = s
        .aggregate("latency_ms", &all(), &Aggregate::Count, HOUR, now)
        .unwrap();
    assert!(
        count <= exact_count + 2.0 && count >= exact_count - 12.0,
        "count {count} vs {exact_count}"
    );
    let p95 = s
        .aggregate(
            "latency_ms",
            &all(),
            &Aggregate::Quantile(0.95),
            2 * HOUR,
            now,
        )
        .unwrap();
    let all_values: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
    assert!((p95 - exact(&all_values, 0.95)).abs() <= exact(&all_values, 0.95) * RELATIVE_ERROR);
    // Two days later it is all in 10 min buckets, every sample still counted once.
    s.compact(now + 2 * DAY);
    // Two hours in 10 min buckets: 12, or 13 where the hours do not start on the grid.
    assert!(
        (12..=13).contains(&s.bucket_count()),
        "{}",
        s.bucket_count()
    );
    assert_eq!(
        s.aggregate(
            "latency_ms",
            &all(),
            &Aggregate::Count,
            3 * DAY,
            now + 2 * DAY
        ),
        Some(values.len() as f64)
    );
    // Past the lookback (8 days) everything is gone.
    s.compact(now + 8 * DAY + HOUR);
    assert_eq!(s.bucket_count(), 0);
    assert_eq!(
        s.aggregate(
            "latency_ms",
            &all(),
            &Aggregate::Count,
            9 * DAY,
            now + 8 * DAY + HOUR
        ),
        None
    );
}

/// Eight days of a sample a minute, compacted as the server does (every 10 s): the newest
/// hour in 10 s buckets, the day in minutes, the rest in 10 min buckets; nothing counted twice
/// or lost, "same time last week" read from the 10 min buckets, and a round trip through
/// export and import (in either order against what is already held) changes no count.
#[test]
fn a_week_is_kept_in_three_tiers_each_sample_once() {
    let mut s = store();
    let start = T0 - 8 * DAY + 5 * MINUTE;
    let mut t = start;
    while t <= T0 {
        s.record(&latency(t, 100.0), t).unwrap();
        s.compact(t);
        t += MINUTE;
    }
    let total = ((T0 - start) / MINUTE + 1) as f64;
    let count = |s: &MetricStore, window: Millis, at: Millis| {
        s.aggregate("latency_ms", &all(), &Aggregate::Count, window, at)
    };
    assert_eq!(count(&s, 9 * DAY, T0), Some(total));
    // 60 fine, about 1,440 minutes, the rest (about 7 days) in 10 min buckets: ~2,500, not
    // the 11,520 a minute a bucket would be.
    let held = s.bucket_count();
    assert!((2_400..=2_600).contains(&held), "{held} buckets");
    // A week back, a 10 min window holds exactly one 10 min bucket: ten samples.
    let week_ago = T0 - 7 * DAY;
    assert_eq!(count(&s, 10 * MINUTE, week_ago), Some(10.0));
    // Read at any second of those ten minutes, never two buckets: rolled-up buckets count
    // only when they start inside the window.
    for second in (0..600).step_by(3) {
        let at = week_ago + second * SECOND;
        assert_eq!(count(&s, 10 * MINUTE, at), Some(10.0), "at +{second}s");
        assert_eq!(
            count(&s, 5 * MINUTE, T0 - 12 * HOUR + second * SECOND),
            Some(5.0),
            "minutes at +{second}s"
        );
    }
    // Half a day back, a 10 min window of minutes: ten samples too.
    assert_eq!(count(&s, 10 * MINUTE, T0 - 12 * HOUR), Some(10.0));
    // Out and in again: as its own in a new store, then the same again over it.
    let exported = s.export_buckets(T0 - 9 * DAY, T0);
    let widths: BTreeSet<Millis> = exported.iter().map(|b| b.width).collect();
    assert_eq!(widths, BTreeSet::from([10 * SECOND, MINUTE, 10 * MINUTE]));
    let mut again = store();
    again.import(exported.clone());
    assert_eq!(count(&again, 9 * DAY, T0), Some(total));
    again.import(exported.clone());
    assert_eq!(count(&again, 9 * DAY, T0), Some(total));
    // Rows as a database returns them (by start, then width): the minutes a 10 min bucket
    // was rolled up from, read after it, add nothing.
    let mut rows = exported.clone();
    for b in &exported {
        if b.width == 10 * MINUTE {
            for m in 0..10 {
                rows.push(PersistedBucket {
                    start: b.start + m * MINUTE,
                    width: MINUTE,
                    bucket: Bucket::default(),
                    ..b.clone()
                });
            }
        }
    }
    rows.sort_by_key(|b| (b.start, b.width));
    let mut loaded = store();
    loaded.import(rows);
    loaded.compact(T0);
    assert_eq!(count(&loaded, 9 * DAY, T0), Some(total));
    assert_eq!(loaded.bucket_count(), held);
}

#[test]
fn rolled_up_sketches_are_packed_and_read_the_same() {
    let kinds = [("latency_ms".to_string(), MetricKind::Distribution)];
    let mut packed = MetricStore::new(StoreConfig::default(), kinds.clone());
    let unpacked_config = StoreConfig {
        pack_closed: false,
        ..StoreConfig::default()
    };
    let mut dense = MetricStore::new(unpacked_config, kinds);
    // Two days of latencies spread over three decades, a few samples a minute.
    let start = T0 - 2 * DAY;
    let mut t = start;
    let mut i = 0u64;
    while t <= T0 {
        for k in 0..3 {
            i += 1;
            let v = 5.0 * 400f64.powf(((i * 7919) % 1000) as f64 / 1000.0) + k as f64;
            for s in [&mut packed, &mut dense] {
                s.record(&latency(t + k * 1000, v), t).unwrap();
                s.compact(t);
            }
        }
        t += MINUTE;
    }
    for (window, at) in [
        (10 * MINUTE, T0 - 30 * HOUR),
        (HOUR, T0 - 26 * HOUR),
        (5 * MINUTE, T0 - 3 * HOUR),
        (DAY, T0),
        (2 * DAY, T0),
        (MINUTE, T0),
    ] {
        for q in [0.5, 0.95, 0.99] {
            let read = |s: &MetricStore| {
                s.aggregate("latency_ms", &all(), &Aggregate::Quantile(q), window, at)
            };
            assert!(read(&dense).is_some());
            assert_eq!(read(&packed), read(&dense), "p{q} over {window} at {at}");
        }
    }
    // Every rolled-up bucket's sketch is packed there, none here; the newest hour is open.
    let sketches = |s: &MetricStore| -> Vec<(Millis, bool)> {
        s.export_buckets(start, T0 + MINUTE)
            .into_iter()
            .filter_map(|b| Some((b.width, b.bucket.sketch?.is_packed())))
            .collect()
    };
    let (rolled, fine): (Vec<_>, Vec<_>) = sketches(&packed)
        .into_iter()
        .partition(|(w, _)| *w > 10 * SECOND);
    assert!(rolled.len() > 1_000 && !fine.is_empty());
    assert!(rolled.iter().all(|(_, p)| *p) && fine.iter().all(|(_, p)| !*p));
    assert!(sketches(&dense).iter().all(|(_, p)| !*p));
    // A packed store's export, imported elsewhere, reads the same again.
    let mut again = store();
    again.import(packed.export_buckets(start, T0 + MINUTE));
    let p95 = Aggregate::Quantile(0.95);
    assert_eq!(
        again.aggregate("latency_ms", &all(), &p95, 2 * DAY, T0),
        dense.aggregate("latency_ms", &all(), &p95, 2 * DAY, T0)
    );
}

#[test]
fn a_remembered_merge_of_rolled_up_sketches_reads_as_a_fresh_one() {
    // Two arms for three hours, then two quiet hours, compacted every minute in a store that
    // keeps 90 minutes (minutes roll up, then age out even when nothing new arrives), another
    // replica's buckets imported half way: a stage's tally, read from the store (whose merges
    // of rolled-up sketches are remembered), must equal a fresh merge and the plain read.
    let config = StoreConfig {
        fine_retention: 10 * MINUTE,
        coarse_retention: 40 * MINUTE,
        broad_retention: 90 * MINUTE,
        ..StoreConfig::default()
    };
    let kinds = [("latency_ms".to_string(), MetricKind::Distribution)];
    let (mut s, mut other) = (
        MetricStore::new(config, kinds.clone()),
        MetricStore::new(config, kinds),
    );
    let canary: Selector = [("variant".to_string(), "canary".to_string())].into();
    let start = T0 - 5 * HOUR;
    let quiet = start + 3 * HOUR;
    let entered = start + 5 * MINUTE + 7 * SECOND;
    let check = |s: &MetricStore, t: Millis| {
        let window = t - entered;
        for selector in [&canary, &all()] {
            let fresh = s.clone().tally("latency_ms", selector, window, t).unwrap();
            // Twice: the second read comes from what the first remembered.
            for _ in 0..2 {
                let tally = s.tally("latency_ms", selector, window, t).unwrap();
                let when = format!("at +{}m", (t - start) / MINUTE);
                assert_eq!(tally.count, fresh.count, "{when}");
                for q in [0.5, 0.95, 0.99] {
                    let at = |t: &crate::sequential::Tally| {
                        t.sketch.as_ref().and_then(|s| s.quantile(q).ok().flatten())
                    };
                    assert_eq!(at(&tally), at(&fresh), "p{q} {when}");
                    // The plain read of the same window, merged bucket by bucket.
                    let plain =
                        s.aggregate("latency_ms", selector, &Aggregate::Quantile(q), window, t);
                    assert_eq!(at(&tally), plain, "p{q} {when}");
                }
                let sketched = tally.sketch.as_ref().map_or(0, |k| k.count() as u64);
                assert_eq!(sketched, tally.count, "{when}");
            }
        }
    };
    let mut t = start;
    let mut i = 0u64;
    while t <= T0 {
        for k in (0..20u64).filter(|_| t < quiet) {
            i += 1;
            let v = 10.0 * 50f64.powf(((i * 7919) % 1000) as f64 / 1000.0);
            let variant = if k % 4 == 0 { "canary" } else { "baseline" };
            let mut sample = latency(t + (k as i64) * 1000, v);
            sample.labels = [("variant".to_string(), variant.to_string())].into();
            let target = if k % 5 == 0 { &mut other } else { &mut s };
            target.record(&sample, t + 20 * SECOND).unwrap();
        }
        s.compact(t);
        other.compact(t);
        if t > entered {
            check(&s, t);
        }
        if t == start + 90 * MINUTE {
            // Read, then the other replica's buckets arrive, then read at the same moment.
            s.import_remote(ReplicaBuckets {
                replica: "other".into(),
                as_of: t,
                buckets: other.export_buckets(start, t),
            });
            check(&s, t);
        }
        t += MINUTE;
    }
    // Everything from the busy hours has aged out by the end.
    assert_eq!(
        s.tally("latency_ms", &all(), T0 - entered, T0)
            .unwrap()
            .count,
        0
    );
}

#[test]
fn memory_is_bounded_by_time_not_by_samples() {
    let mut s = store();
    for i in 0..1_000_000_i64 {
        let ts = T0 + (i * 600) / 1000; // 1M samples over 10 minutes
        s.record(&latency(ts, (i % 1000) as f64), ts).unwrap();
    }
    assert!(s.bucket_count() <= 61, "{} buckets", s.bucket_count());
    assert_eq!(
        s.aggregate(
            "latency_ms",
            &all(),
            &Aggregate::Count,
            HOUR,
            T0 + 10 * MINUTE
        ),
        Some(1e6)
    );
}

#[test]
fn label_cardinality_is_bounded_and_a_late_legitimate_value_still_counts() {
    let mut s = store().selecting([("variant".to_string(), "canary".to_string())]);
    // A burst of junk fills every free label set first.
    for i in 0..1000 {
        let mut x = latency(T0, 1.0);
        x.labels.insert("variant".into(), format!("junk-{i}"));
        s.record(&x, T0).unwrap();
    }
    // Then the canary starts reporting: nothing is refused, and its queries read only it.
    for v in [500.0, 600.0, 700.0] {
        let mut x = latency(T0, v);
        x.labels.insert("variant".into(), "canary".into());
        x.labels.insert("pod".into(), "canary-7f9".into());
        s.record(&x, T0).unwrap();
    }
    let canary = Selector::from([("variant".to_string(), "canary".to_string())]);
    assert_eq!(
        s.aggregate("latency_ms", &canary, &Aggregate::Count, 10 * SECOND, T0),
        Some(3.0)
    );
    assert_eq!(
        s.aggregate("latency_ms", &all(), &Aggregate::Count, 10 * SECOND, T0),
        Some(1003.0),
        "totals stay whole"
    );
    // 64 sets of its own, and overflow sets bounded by the pairs the plan selects on.
    assert!(s.series_count() <= 64 + 2, "{}", s.series_count());
    assert_eq!(s.overflowed("latency_ms"), 1000 - 64 + 3);
}

#[test]
fn export_import_round_trips_and_a_second_import_does_not_double_count() {
    let mut s = store();
    for i in 0..600 {
        let ts = T0 - 30 * MINUTE + i * 3 * SECOND;
        s.record(&latency(ts, 100.0 + (i % 50) as f64), ts).unwrap();
        s.record(&sample("error", ts, SampleValue::Flag(i % 10 == 0)), ts)
            .unwrap();
    }
    let exported = s.export_buckets(T0 - HOUR, T0);
    let mut fresh = store();
    fresh.import(exported.clone());
    fresh.import(exported);
    // Buckets keep their width, so every window and series answers exactly as before.
    for at in [T0, T0 - 7 * MINUTE - 3 * SECOND, T0 - 20 * MINUTE] {
        for window in [10 * SECOND, 5 * MINUTE, 20 * MINUTE] {
            for agg in [Aggregate::Count, Aggregate::Quantile(0.95), Aggregate::Mean] {
                let a = s.aggregate("latency_ms", &all(), &agg, window, at);
                assert_eq!(
                    a,
                    fresh.aggregate("latency_ms", &all(), &agg, window, at),
                    "{agg:?}"
                );
            }
            let a = s.aggregate("error", &all(), &Aggregate::Rate, window, at);
            assert_eq!(
                a,
                fresh.aggregate("error", &all(), &Aggregate::Rate, window, at)
            );
        }
    }
    let from = T0 - 30 * MINUTE;
    let a = s.series(
        "latency_ms",
        &all(),
        &Aggregate::Count,
        from,
        T0,
        10 * SECOND,
    );
    assert_eq!(
        a,
        fresh.series(
            "latency_ms",
            &all(),
            &Aggregate::Count,
            from,
            T0,
            10 * SECOND
        )
    );
    assert_eq!(
        a.iter().filter_map(|p| p.v).sum::<f64>(),
        600.0,
        "the import holds every sample"
    );
}

#[test]
fn series_have_gaps_where_nothing_arrived() {
    let mut s = store();
    s.record(&latency(T0 - 25 * SECOND, 5.0), T0).unwrap();
    let points = s.series(
        "latency_ms",
        &all(),
        &Aggregate::Mean,
        T0 - 30 * SECOND,
        T0,
        10 * SECOND,
    );
    let values: Vec<Option<f64>> = points.iter().map(|p| p.v).collect();
    assert_eq!(values.len(), 4);
    assert_eq!(values.iter().filter(|v| v.is_some()).count(), 1);
}

#[test]
fn the_store_can_be_shared_across_threads() {
    fn check<T: Send + Sync>() {}
    check::<MetricStore>();
}

proptest! {
    #[test]
    fn quantiles_are_within_the_stated_relative_error(
        values in prop::collection::vec(0.1f64..100_000.0, 1..2000),
        spread in 1i64..3600,
    ) {
        let mut s = store();
        for (i, v) in values.iter().enumerate() {
            let ts = T0 - (i as i64 * spread * SECOND) / values.len() as i64;
            s.record(&latency(ts, *v), T0).ok();
        }
        // Samples older than the lateness allowance were dropped; compare with those kept.
        let kept: Vec<f64> = values.iter().enumerate()
            .filter(|(i, _)| T0 - (*i as i64 * spread * SECOND) / values.len() as i64 >= T0 - 5 * MINUTE)
            .map(|(_, v)| *v).collect();
        for q in [0.5, 0.9, 0.95, 0.99] {
            let got = s.aggregate("latency_ms", &all(), &Aggregate::Quantile(q), HOUR, T0).unwrap();
            let want = exact(&kept, q);
            prop_assert!((got - want).abs() <= want * RELATIVE_ERROR + 1e-9, "q{} got {} want {}", q, got, want);
        }
    }

    #[test]
    fn merging_buckets_equals_sketching_the_union(
        values in prop::collection::vec((0.5f64..5_000.0, 0i64..300, 0usize..4), 1..500),
    ) {
        let mut split = store();
        let mut one = store();
        let mut one_bucket = Bucket::default();
        for (v, age, label) in &values {
            let ts = T0 - age * SECOND;
            let mut x = latency(ts, *v);
            one.record(&x, T0).unwrap();
            x.labels.insert("variant".into(), label.to_string());
            split.record(&x, T0).unwrap();
            one_bucket.add_number(ts, *v, true);
        }
        for agg in [Aggregate::Quantile(0.5), Aggregate::Quantile(0.99), Aggregate::Count, Aggregate::Max] {
            let a = split.aggregate("latency_ms", &all(), &agg, 10 * MINUTE, T0);
            let b = one.aggregate("latency_ms", &all(), &agg, 10 * MINUTE, T0);
            prop_assert_eq!(a, b);
            prop_assert_eq!(b, one_bucket.aggregate(&agg));
        }
        let sum_a = split.aggregate("latency_ms", &all(), &Aggregate::Sum, 10 * MINUTE, T0).unwrap();
        let sum_b = one_bucket.aggregate(&Aggregate::Sum).unwrap();
        prop_assert!((sum_a - sum_b).abs() <= 1e-6 * sum_b.abs().max(1.0));
    }

    /// Replicas: events split between two stores, each importing the other's buckets (twice,
    /// and after more events arrived, as a poller does), answer exactly as one store with every
    /// event; and neither exports the other's buckets.
    #[test]
    fn replicas_importing_each_others_buckets_answer_as_one_store(
        values in prop::collection::vec((0.5f64..5_000.0, 0i64..300, 0..3usize), 2..400),
    ) {
        // Three replicas: each takes some events, all write buckets of the same starts.
        let mut replicas = [store(), store(), store()];
        let mut one = store();
        let names = ["a", "b", "c"];
        let poll = |replicas: &mut [MetricStore; 3], at: Millis| {
            let exports: Vec<_> = replicas.iter().map(|r| r.export_buckets(T0 - HOUR, T0)).collect();
            for (i, r) in replicas.iter_mut().enumerate() {
                for (j, buckets) in exports.iter().enumerate() {
                    if i != j {
                        r.import_remote(ReplicaBuckets {
                            replica: names[j].into(),
                            as_of: at,
                            buckets: buckets.clone(),
                        });
                    }
                }
            }
        };
        let half = values.len() / 2;
        for (i, (v, age, to)) in values.iter().enumerate() {
            let x = latency(T0 - age * SECOND, *v);
            one.record(&x, T0).unwrap();
            replicas[*to].record(&x, T0).unwrap();
            if i == half {
                // A poll in the middle: older versions of buckets that change later.
                poll(&mut replicas, T0 - SECOND);
            }
        }
        poll(&mut replicas, T0);
        poll(&mut replicas, T0);
        for agg in [Aggregate::Quantile(0.5), Aggregate::Quantile(0.95), Aggregate::Count, Aggregate::Max, Aggregate::Last] {
            let want = one.aggregate("latency_ms", &all(), &agg, 10 * MINUTE, T0);
            for r in &replicas {
                prop_assert_eq!(r.aggregate("latency_ms", &all(), &agg, 10 * MINUTE, T0), want);
            }
        }
        let own: usize = values.iter().filter(|(_, _, to)| *to == 0).count();
        let exported: f64 = replicas[0]
            .export_buckets(T0 - HOUR, T0)
            .iter()
            .filter_map(|p| p.bucket.aggregate(&Aggregate::Count))
            .sum();
        prop_assert_eq!(exported as usize, own);
        let fresh: Vec<_> = replicas[0].remote_as_of();
        prop_assert_eq!(fresh, vec![("b".to_string(), T0), ("c".to_string(), T0)]);
    }

    #[test]
    fn arrival_order_within_lateness_does_not_matter(
        mut values in prop::collection::vec((0.5f64..5_000.0, 0i64..290), 1..300),
    ) {
        let mut in_order = store();
        let mut shuffled = store();
        values.sort_by_key(|(_, age)| -age);
        for (v, age) in &values {
            in_order.record(&latency(T0 - age * SECOND, *v), T0).unwrap();
        }
        for (v, age) in values.iter().rev() {
            shuffled.record(&latency(T0 - age * SECOND, *v), T0).unwrap();
        }
        for agg in [Aggregate::Quantile(0.95), Aggregate::Count, Aggregate::Last, Aggregate::Max] {
            prop_assert_eq!(
                in_order.aggregate("latency_ms", &all(), &agg, 10 * MINUTE, T0),
                shuffled.aggregate("latency_ms", &all(), &agg, 10 * MINUTE, T0)
            );
        }
    }
}

#[test]
fn earliest_is_the_oldest_bucket_own_or_imported() {
    let mut s = store();
    assert_eq!(s.earliest(), None);
    s.record(&latency(T0 + 25 * SECOND, 100.0), T0 + 30 * SECOND)
        .unwrap();
    assert_eq!(s.earliest(), Some(T0 + 20 * SECOND));
    let mut other = store();
    other
        .record(&latency(T0 + 5 * SECOND, 100.0), T0 + 5 * SECOND)
        .unwrap();
    s.import_remote(ReplicaBuckets {
        replica: "other".into(),
        as_of: T0 + 5 * SECOND,
        buckets: other.export_buckets(T0, T0 + MINUTE),
    });
    assert_eq!(s.earliest(), Some(T0));
}

proptest! {
    /// A recorder looks each series up once and writes at the end, yet leaves the store
    /// exactly as recording the same samples one by one does: the same answers, the same
    /// buckets (sums included, bit for bit), the same dropped and overflowed counts.
    #[test]
    fn a_recorder_records_exactly_as_one_by_one(
        samples in proptest::collection::vec(
            (0usize..5, 0usize..6, -400i64..20, 0u8..8),
            0..120,
        ),
    ) {
        let config = StoreConfig { max_series_per_metric: 2, ..StoreConfig::default() };
        let metrics = ["latency_ms", "error", "mode", "reads", "contexts"];
        let make = || {
            MetricStore::new(config, store().kinds.clone())
                .selecting([("variant".to_string(), "canary".to_string())])
        };
        let label_sets: Vec<BTreeMap<String, String>> = [
            vec![],
            vec![("variant", "canary")],
            vec![("variant", "baseline")],
            vec![("variant", "canary"), ("pod", "p1")],
            vec![("pod", "p2")],
            vec![(OVERFLOW_LABEL, "true")],
        ]
        .iter()
        .map(|set| set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .collect();
        let samples: Vec<Sample> = samples
            .iter()
            .map(|&(m, l, dt, v)| Sample {
                metric: metrics[m].to_string(),
                labels: label_sets[l].clone(),
                ts: T0 + dt * SECOND,
                value: match (m, v) {
                    (1, _) => SampleValue::Flag(v % 2 == 0),
                    (2, _) => SampleValue::Category(["full", "lite", "x"][usize::from(v % 3)].into()),
                    (_, 7) => SampleValue::Flag(true),
                    _ => SampleValue::Number(f64::from(v) * 1.1 - 2.0),
                },
            })
            .collect();
        let (mut one, mut many) = (make(), make());
        // Some history first, so some sets exist before and some are claimed on the way.
        for s in [&mut one, &mut many] {
            s.record(&sample("latency_ms", T0 - MINUTE, SampleValue::Number(1.0)), T0).unwrap();
        }
        let expected: Vec<_> = samples.iter().map(|s| one.record(s, T0)).collect();
        let mut got = Vec::new();
        {
            let mut recorder = many.recorder(T0);
            let mut slots = HashMap::new();
            for s in &samples {
                let key = (s.metric.as_str(), &s.labels);
                let slot = match slots.get(&key) {
                    Some(slot) => *slot,
                    None => {
                        let slot = recorder.series(&s.metric, &s.labels).unwrap();
                        slots.insert(key, slot);
                        slot
                    }
                };
                got.push(recorder.add(slot, s.ts, s.value.observation()));
            }
        }
        prop_assert_eq!(got, expected);
        let json = |s: &MetricStore| serde_json::to_string(&s.export_buckets(T0 - HOUR, T0 + MINUTE)).unwrap();
        prop_assert_eq!(json(&many), json(&one));
        for m in metrics {
            prop_assert_eq!(many.dropped(m), one.dropped(m));
            prop_assert_eq!(many.overflowed(m), one.overflowed(m));
        }
    }
}

/// `per_second` is events (a counter: its sum) over the time the window's buckets span, and
/// no events is no data rather than a rate of zero from nowhere.
#[test]
fn per_second_counts_events_or_sums_a_counter_over_the_window() {
    let mut s = store();
    let at = T0 + 60 * SECOND - 1;
    assert_eq!(
        s.aggregate("latency_ms", &all(), &Aggregate::PerSecond, MINUTE, at),
        None
    );
    // 10 events a second for the minute starting at T0 (a bucket boundary).
    for i in 0..600 {
        let ts = T0 + i * 100;
        s.record(&latency(ts, 5.0), T0 + 60 * SECOND).unwrap();
        s.record(
            &sample("reads", ts, SampleValue::Number(3.0)),
            T0 + 60 * SECOND,
        )
        .unwrap();
    }
    let rps = s
        .aggregate("latency_ms", &all(), &Aggregate::PerSecond, MINUTE, at)
        .unwrap();
    assert!((rps - 10.0).abs() < 1e-9, "{rps}");
    let reads = s
        .aggregate("reads", &all(), &Aggregate::PerSecond, MINUTE, at)
        .unwrap();
    assert!((reads - 30.0).abs() < 1e-9, "{reads}");
}

/// The values a label takes among the series with samples in the window, narrowed by a
/// selector: what `any`/`all` range over. An endpoint last seen before the window is not one.
#[test]
fn label_values_are_those_with_samples_in_the_window() {
    let mut s = store();
    let mut at = |endpoint: &str, variant: &str, ts: Millis| {
        let mut x = latency(ts, 100.0);
        x.labels = BTreeMap::from([
            ("endpoint".to_string(), endpoint.to_string()),
            ("variant".to_string(), variant.to_string()),
        ]);
        // Recorded as it arrived.
        s.record(&x, ts).unwrap();
    };
    at("search", "canary", T0 - SECOND);
    at("browse", "baseline", T0 - 2 * SECOND);
    at("old", "canary", T0 - 30 * MINUTE);
    let w = 5 * MINUTE;
    assert_eq!(
        s.label_values("latency_ms", &all(), "endpoint", w, T0),
        ["browse", "search"]
    );
    let canary = Selector::from([("variant".to_string(), "canary".to_string())]);
    assert_eq!(
        s.label_values("latency_ms", &canary, "endpoint", w, T0),
        ["search"]
    );
    assert!(
        s.label_values("latency_ms", &all(), "region", w, T0)
            .is_empty()
    );
    assert!(s.label_values("nope", &all(), "endpoint", w, T0).is_empty());
}

proptest! {
    /// Sliding windows over merged blocks are the plain merge of each window's blocks.
    #[test]
    fn sliding_windows_equal_merging_each_window(
        values in prop::collection::vec(prop::collection::vec(0.5f64..5000.0, 0..6), 1..60),
        k in 1usize..12,
    ) {
        let blocks: Vec<Bucket> = values
            .iter()
            .map(|vs| {
                let mut b = Bucket::default();
                for v in vs {
                    b.add_numbers(0, *v, 1, true);
                }
                b
            })
            .collect();
        let slid = sliding(&blocks, k);
        prop_assert_eq!(slid.len(), blocks.len());
        for i in 0..blocks.len() {
            let mut plain = Bucket::default();
            for b in &blocks[(i + 1).saturating_sub(k)..=i] {
                plain.merge(b);
            }
            prop_assert_eq!(slid[i].count, plain.count);
            prop_assert!((slid[i].sum - plain.sum).abs() <= 1e-6 * plain.sum.max(1.0));
            prop_assert_eq!(
                slid[i].aggregate(&Aggregate::Quantile(0.95)),
                plain.aggregate(&Aggregate::Quantile(0.95))
            );
        }
    }
}
