//! The sequences keep their promise under continuous looking, on seeded simulations: a true
//! rate or quantile is outside its interval at some look in at most `alpha` of runs, equal
//! arms are almost never called worse, and real differences are found.

use super::*;

/// SplitMix64: a small, seeded generator, so every run of these tests sees the same data.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
}

/// Exact order statistics, for testing the sequences apart from any sketch.
#[derive(Default)]
struct Sorted(Vec<f64>);

impl Sorted {
    fn add(&mut self, v: f64) {
        let i = self.0.partition_point(|x| *x <= v);
        self.0.insert(i, v);
    }
}

impl Ranked for Sorted {
    fn count(&self) -> u64 {
        self.0.len() as u64
    }
    fn value_at_index(&self, index: u64) -> Option<f64> {
        self.0.get(index as usize).copied()
    }
    fn relative(&self) -> f64 {
        0.0
    }
}

#[test]
fn a_rate_interval_holds_the_true_rate_at_every_look() {
    let alpha = 0.05;
    let mut rng = Rng(7);
    let runs = 200;
    let mut missed = 0;
    for _ in 0..runs {
        let p = 0.02;
        let (mut s, mut n) = (0u64, 0u64);
        let mut out = false;
        for look in 0..2_000 {
            for _ in 0..5 {
                n += 1;
                s += u64::from(rng.uniform() < p);
            }
            if look % 10 == 0 {
                let (lo, hi) = rate_interval(s, n, alpha);
                out |= !(lo <= p && p <= hi);
            }
        }
        missed += u64::from(out);
    }
    let rate = missed as f64 / runs as f64;
    assert!(
        rate <= alpha,
        "the true rate left its interval in {rate} of runs"
    );
    // And it narrows: after 10,000 trials at 2% it spans about a point (a fixed-sample
    // interval would span about half that: the price of looking at every moment).
    let (lo, hi) = rate_interval(200, 10_000, alpha);
    assert!(lo > 0.014 && hi < 0.027, "{lo}..{hi}");
}

#[test]
fn a_quantile_interval_holds_the_true_quantile_at_every_look() {
    let alpha = 0.05;
    let mut rng = Rng(11);
    let (median, sigma, q) = (100.0, 0.5, 0.95);
    // The true p95 of a log-normal: median x exp(sigma x z_0.95).
    let truth = median * (sigma * 1.644_853_626_951_472_2_f64).exp();
    let runs = 100;
    let mut missed = 0;
    for _ in 0..runs {
        let mut d = Sorted::default();
        let mut out = false;
        for look in 0..300 {
            for _ in 0..10 {
                d.add(rng.lognormal(median, sigma));
            }
            if look % 5 == 0 {
                let (lo, hi) = quantile_interval(&d, q, alpha);
                out |= lo.is_some_and(|l| l > truth) || hi.is_some_and(|h| h < truth);
            }
        }
        missed += u64::from(out);
    }
    assert!(
        missed as f64 / runs as f64 <= alpha,
        "the true p95 left its interval in {missed} of {runs} runs"
    );
}

#[test]
fn rank_intervals_are_one_run_around_the_expected_count() {
    let (lo, hi) = rank_interval(0.95, 10_000, 0.025);
    assert!(lo < 9_500 && 9_500 < hi, "{lo}..{hi}");
    assert!(hi - lo < 300, "{lo}..{hi}");
    // With three values the count can still be all of them: the upper end stays open.
    let (lo, hi) = rank_interval(0.95, 3, 0.025);
    assert_eq!(hi, 3);
    assert!(lo <= 2, "{lo}");
    assert_eq!(rank_interval(0.5, 0, 0.025), (0, 0));
}

/// Canary and baseline from one distribution (a 5% canary), looked at every 10 s for an
/// hour: almost never "worse" at any look; with a canary 30% slower, "worse" is found.
#[test]
fn equal_arms_are_rarely_called_worse_and_a_slow_canary_is_found() {
    let alpha = 0.05;
    let mut rng = Rng(3);
    let runs = 40;
    let (mut false_alarms, mut found, mut cleared) = (0, 0, 0);
    for run in 0..runs {
        let slow = run % 2 == 1;
        let (mut c, mut b) = (Sorted::default(), Sorted::default());
        let (mut ever_worse, mut ever_not_worse) = (false, false);
        for _ in 0..360 {
            for _ in 0..10 {
                c.add(rng.lognormal(100.0, 0.5) * if slow { 1.3 } else { 1.0 });
            }
            for _ in 0..190 {
                b.add(rng.lognormal(100.0, 0.5));
            }
            let r = compare_quantiles(&c, &b, 0.95, Worse::Above, 0.10, alpha);
            ever_worse |= r.finding == Finding::Worse;
            ever_not_worse |= r.finding == Finding::NotWorse;
        }
        if slow {
            found += u32::from(ever_worse);
            assert!(!ever_not_worse, "a 30% slower canary called not worse");
        } else {
            false_alarms += u32::from(ever_worse);
            cleared += u32::from(ever_not_worse);
        }
    }
    let half = (runs / 2) as f64;
    assert!(
        false_alarms as f64 / half <= alpha,
        "{false_alarms} false alarms"
    );
    assert!(
        found as f64 / half >= 0.9,
        "found {found} of {half} slow canaries"
    );
    assert!(
        cleared as f64 / half >= 0.5,
        "cleared {cleared} of {half} healthy canaries"
    );
}

#[test]
fn rates_compare_in_points_and_the_split_check_holds_its_level() {
    // 1% vs 1% with a half-point margin after plenty: not worse; 3% vs 1%: worse.
    let r = compare_rates(400, 40_000, 7_600, 760_000, Worse::Above, 0.005, 0.05);
    assert_eq!(r.finding, Finding::NotWorse, "{r:?}");
    let r = compare_rates(300, 10_000, 1_900, 190_000, Worse::Above, 0.005, 0.05);
    assert_eq!(r.finding, Finding::Worse, "{r:?}");
    let r = compare_rates(1, 50, 10, 1_000, Worse::Above, 0.005, 0.05);
    assert_eq!(r.finding, Finding::NotYetKnown, "{r:?}");

    // The split check at 5%, 200 runs of each kind: the seed is fixed, the bound allows the
    // binomial noise of 200 runs around a true 5% (2 sd), not a broken level.
    let mut rng = Rng(5);
    let runs = 400;
    let mut false_alarms = 0;
    let mut caught = 0;
    for run in 0..runs {
        let share = if run % 2 == 0 { 0.05 } else { 0.06 };
        let (mut c, mut b) = (0u64, 0u64);
        let mut off = false;
        for _ in 0..720 {
            for _ in 0..50 {
                if rng.uniform() < share {
                    c += 1;
                } else {
                    b += 1;
                }
            }
            off |= split_is_off(c, b, 0.05, 0.05);
        }
        if run % 2 == 0 {
            false_alarms += u32::from(off);
        } else {
            caught += u32::from(off);
        }
    }
    assert!(
        false_alarms as f64 / (runs / 2) as f64 <= 0.01,
        "{false_alarms}"
    );
    assert!(caught as f64 / (runs / 2) as f64 >= 0.9, "caught {caught}");
}

/// One bucket's tally of `values`.
fn block(values: &[f64]) -> Tally {
    Tally::block(
        values.len() as u64,
        0,
        values.iter().sum(),
        Some(values.iter().map(|v| v * v).sum()),
        None,
        0.0,
    )
}

#[test]
fn a_mean_interval_holds_the_true_mean_of_bounded_values_at_every_look() {
    let alpha = 0.05;
    let mut rng = Rng(23);
    let runs = 200;
    let mut missed = 0;
    // Scores in [0, 1], skewed toward the top: the mean of u^(1/4) is 0.8.
    let truth = 0.8;
    for _ in 0..runs {
        let mut t = Tally::default();
        let mut out = false;
        for _ in 0..500 {
            let values: Vec<f64> = (0..10).map(|_| rng.uniform().powf(0.25)).collect();
            t.then(&block(&values));
            let (lo, hi) = mean_interval(t.sum, t.count, &t.spread, [0.0, 1.0], alpha).unwrap();
            out |= !(lo <= truth && truth <= hi);
        }
        missed += u64::from(out);
    }
    assert!(
        missed as f64 / runs as f64 <= alpha,
        "the true mean left its interval in {missed} of {runs} runs"
    );
    assert_eq!(
        mean_interval(0.0, 0, &Spread::default(), [0.0, 1.0], alpha),
        None
    );
}

/// The interval adapts to the values' real spread: scores that vary by a few hundredths are
/// pinned far sooner than the range alone allows, and the same scores with their squares
/// unknown (old buckets) fall back to a valid, wider interval.
#[test]
fn a_mean_interval_narrows_with_the_values_spread_not_their_range() {
    let mut rng = Rng(31);
    let (mut tight, mut unknown) = (Tally::default(), Tally::default());
    for _ in 0..100 {
        let values: Vec<f64> = (0..20)
            .map(|_| rng.lognormal(0.9, 0.05).clamp(0.0, 1.0))
            .collect();
        tight.then(&block(&values));
        let mut old = block(&values);
        old.squares = None;
        unknown.then(&old);
    }
    let width = |t: &Tally| {
        let (lo, hi) = mean_interval(t.sum, t.count, &t.spread, [0.0, 1.0], 0.05).unwrap();
        assert!(lo <= 0.9 && 0.9 <= hi, "{lo}..{hi}");
        hi - lo
    };
    // 2,000 scores of spread ~0.045: within about a point and a half either side.
    assert!(width(&tight) < 0.03, "{}", width(&tight));
    // Knowing only the range, the same scores are pinned within tenths.
    assert!(width(&unknown) > 4.0 * width(&tight), "{}", width(&unknown));
}

/// The spread folded block by block is `sum (x - c)^2` with each block's values centred on
/// the mean of all blocks before it (the first on the range's middle), however the values are
/// split into blocks.
#[test]
fn the_spread_centres_each_block_on_what_came_before() {
    let mut rng = Rng(37);
    for _ in 0..50 {
        let blocks: Vec<Vec<f64>> = (0..1 + rng.next() % 8)
            .map(|_| {
                (0..rng.next() % 5)
                    .map(|_| rng.uniform() * 4.0 + 1.0)
                    .collect()
            })
            .collect();
        let mut t = Tally::default();
        for b in &blocks {
            t.then(&block(b));
        }
        let (mut expected, mut seen) = (0.0, Vec::<f64>::new());
        for b in &blocks {
            let centre = if seen.is_empty() {
                3.0
            } else {
                seen.iter().sum::<f64>() / seen.len() as f64
            };
            expected += b.iter().map(|x| (x - centre).powi(2)).sum::<f64>();
            seen.extend(b);
        }
        let got = t.spread.variance([1.0, 5.0]);
        assert!(
            (got - expected).abs() < 1e-9 * (1.0 + expected),
            "{got} vs {expected}"
        );
        assert_eq!(t.count, seen.len() as u64);
    }
}

#[test]
fn equal_means_are_never_called_worse_and_a_lower_canary_is() {
    let mut rng = Rng(29);
    let (runs, mut worse, mut found) = (100, 0, 0);
    for _ in 0..runs {
        let (mut c, mut b, mut l) = (Tally::default(), Tally::default(), Tally::default());
        let (mut ever_worse, mut lower_found) = (false, false);
        for _ in 0..800 {
            let draw = |rng: &mut Rng, shift: f64| -> Vec<f64> {
                (0..10).map(|_| rng.uniform().powf(0.25) - shift).collect()
            };
            c.then(&block(&draw(&mut rng, 0.0)));
            b.then(&block(&draw(&mut rng, 0.0)));
            // A canary 0.08 lower than its baseline: past a 0.02 margin.
            l.then(&block(&draw(&mut rng, 0.08)));
            let k = compare_means(&c, &b, [-0.1, 1.0], Worse::Below, 0.02, 0.05);
            ever_worse |= k.finding == Finding::Worse;
            let k = compare_means(&l, &b, [-0.1, 1.0], Worse::Below, 0.02, 0.05);
            lower_found |= k.finding == Finding::Worse;
        }
        worse += u32::from(ever_worse);
        found += u32::from(lower_found);
    }
    assert!(
        worse as f64 / runs as f64 <= 0.05,
        "equal arms worse in {worse}"
    );
    assert!(
        found as f64 / runs as f64 >= 0.9,
        "a lower canary found in {found}"
    );
}

#[test]
fn a_decision_estimate_comes_only_while_not_yet_known_and_shrinks_with_the_gap() {
    let mut c = Comparison {
        finding: Finding::NotYetKnown,
        measure: Measure::Ratio,
        worse: Worse::Above,
        margin: 0.10,
        low: Some(0.90),
        high: Some(1.20),
        canary_n: 1_000,
        baseline_n: 19_000,
    };
    assert_eq!(c.limit(), 1.10);
    let early = Comparison {
        canary_n: 999,
        ..c.clone()
    };
    assert_eq!(early.decision_in(60_000), None, "too few events to say");
    // Centre 1.05, half-width 0.15, 0.05 from the limit: nine times the events, eight more
    // times the time so far.
    let minute = 60_000;
    assert_eq!(c.decision_in(minute), Some(8 * minute));
    c.low = Some(0.96);
    c.high = Some(1.14);
    let nearer = c.decision_in(minute).unwrap();
    assert!(nearer < 8 * minute, "{nearer}");
    c.low = None;
    assert_eq!(c.decision_in(minute), None, "an open end says nothing");
    c.low = Some(0.9);
    c.finding = Finding::NotWorse;
    assert_eq!(c.decision_in(minute), None, "decided");
}

/// The case: a 60/40 split where the stage implies 50/50 is flagged within 1,000
/// events in nearly every run (within about 220 in half of them: 217 on this seed), and a true
/// 50/50 split is flagged in at most alpha of runs however long it is watched (20,000 events,
/// every event a look: 8 of 200 on this seed).
#[test]
fn a_sixty_forty_split_is_flagged_within_a_thousand_events_and_an_even_one_is_not() {
    let mut rng = Rng(41);
    let runs = 200;
    let (mut late, mut false_alarms, mut when) = (0, 0, Vec::new());
    for _ in 0..runs {
        let (mut c, mut b) = (0u64, 0u64);
        let mut flagged = None;
        for n in 1..=1_000u64 {
            if rng.uniform() < 0.6 {
                c += 1;
            } else {
                b += 1;
            }
            if flagged.is_none() && split_is_off(c, b, 0.5, 0.05) {
                flagged = Some(n);
            }
        }
        match flagged {
            Some(n) => when.push(n),
            None => late += 1,
        }
        let (mut c, mut b) = (0u64, 0u64);
        let mut off = false;
        for _ in 0..20_000 {
            if rng.uniform() < 0.5 {
                c += 1;
            } else {
                b += 1;
            }
            off |= split_is_off(c, b, 0.5, 0.05);
        }
        false_alarms += u32::from(off);
    }
    when.sort_unstable();
    let median = when.get(when.len() / 2).copied().unwrap_or(u64::MAX);
    assert!(
        late <= runs / 50,
        "not flagged within 1,000 events in {late} of {runs}"
    );
    assert!(median <= 300, "median {median} events");
    assert!(
        false_alarms as f64 / runs as f64 <= 0.05,
        "an even split flagged in {false_alarms} of {runs}"
    );
}
