//! Seeded simulations of the canary comparisons (`cutover_core::sequential`) against the
//! naive windowed gate, for docs/statistics.md:
//!
//! `cargo run --release -p cutover-core --example sequential_sims [RUNS]`
//!
//! Each run is an hour of 200 events a second, 5% to the canary, looked at every 10 s (a
//! war room watching). Latencies are log-normal (median 100 ms, sigma 0.5), or heavy-tailed
//! (the same with a Pareto tail, shape 2.5, above the p90). The comparison asks "canary p95
//! not more than 10% above baseline" at alpha 5%; the naive gate is the plans' own
//! `p95(canary) <= 1.10 * p95(baseline)` over the last 5 minutes.

use cutover_core::sequential::{
    Finding, Ranked, Worse, compare_means, compare_quantiles, compare_rates, split_is_off,
};
use sketches_ddsketch::{Config, DDSketch};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// Log-normal, or with a Pareto tail above its p90 when `heavy`.
    fn latency(&mut self, heavy: bool) -> f64 {
        let z = self.normal();
        let v = 100.0 * (0.5 * z).exp();
        if heavy && z > 1.281_551_565_5 {
            let p90 = 100.0 * (0.5f64 * 1.281_551_565_5).exp();
            p90 * self.uniform().max(1e-12).powf(-1.0 / 2.5)
        } else {
            v
        }
    }
}

struct Sketch(DDSketch);

impl Sketch {
    fn new() -> Sketch {
        Sketch(DDSketch::new(Config::defaults()))
    }
}

impl Ranked for Sketch {
    fn count(&self) -> u64 {
        self.0.count() as u64
    }
    fn value_at_index(&self, index: u64) -> Option<f64> {
        let n = self.0.count();
        let q = if n <= 1 {
            0.0
        } else {
            ((index as f64 + 0.5) / (n as f64 - 1.0)).clamp(0.0, 1.0)
        };
        self.0.quantile(q).ok().flatten()
    }
    fn relative(&self) -> f64 {
        0.01
    }
}

#[derive(Default)]
struct Tally {
    runs: u32,
    ever_worse: u32,
    ever_not_worse: u32,
    naive_ever_fail: u32,
    first_worse: Vec<f64>,
    first_not_worse: Vec<f64>,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn latency_case(runs: u32, seed: u64, heavy: bool, slower: f64, margin: f64) -> Tally {
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    for _ in 0..runs {
        t.runs += 1;
        let (mut c, mut b) = (Sketch::new(), Sketch::new());
        // 10-second buckets for the naive gate's 5-minute window.
        let mut window: std::collections::VecDeque<(DDSketch, DDSketch)> = Default::default();
        let (mut worse, mut not_worse, mut naive_fail) = (None, None, false);
        for look in 1..=360 {
            let mut bucket = (
                DDSketch::new(Config::defaults()),
                DDSketch::new(Config::defaults()),
            );
            for _ in 0..2_000 {
                let v = rng.latency(heavy);
                if rng.uniform() < 0.05 {
                    let v = v * slower;
                    c.0.add(v);
                    bucket.0.add(v);
                } else {
                    b.0.add(v);
                    bucket.1.add(v);
                }
            }
            window.push_back(bucket);
            if window.len() > 30 {
                window.pop_front();
            }
            let minutes = look as f64 / 6.0;
            let r = compare_quantiles(&c, &b, 0.95, Worse::Above, margin, 0.05);
            if r.finding == Finding::Worse && worse.is_none() {
                worse = Some(minutes);
            }
            if r.finding == Finding::NotWorse && not_worse.is_none() {
                not_worse = Some(minutes);
            }
            let (mut wc, mut wb) = (
                DDSketch::new(Config::defaults()),
                DDSketch::new(Config::defaults()),
            );
            for (x, y) in &window {
                let _ = wc.merge(x);
                let _ = wb.merge(y);
            }
            if let (Ok(Some(pc)), Ok(Some(pb))) = (wc.quantile(0.95), wb.quantile(0.95)) {
                naive_fail |= pc > 1.10 * pb;
            }
        }
        t.ever_worse += u32::from(worse.is_some());
        t.ever_not_worse += u32::from(not_worse.is_some());
        t.naive_ever_fail += u32::from(naive_fail);
        t.first_worse.extend(worse);
        t.first_not_worse.extend(not_worse);
    }
    t
}

fn rate_case(runs: u32, seed: u64, canary_rate: f64) -> (u32, u32, Vec<f64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let (mut worse, mut not_worse, mut when, mut cleared) = (0, 0, Vec::new(), Vec::new());
    for _ in 0..runs {
        let (mut cn, mut ch, mut bn, mut bh) = (0u64, 0u64, 0u64, 0u64);
        let (mut w, mut nw) = (false, false);
        for look in 1..=360 {
            for _ in 0..2_000 {
                if rng.uniform() < 0.05 {
                    cn += 1;
                    ch += u64::from(rng.uniform() < canary_rate);
                } else {
                    bn += 1;
                    bh += u64::from(rng.uniform() < 0.01);
                }
            }
            let r = compare_rates(ch, cn, bh, bn, Worse::Above, 0.005, 0.05);
            if r.finding == Finding::Worse && !w {
                w = true;
                when.push(look as f64 / 6.0);
            }
            if r.finding == Finding::NotWorse && !nw {
                nw = true;
                cleared.push(look as f64 / 6.0);
            }
        }
        worse += u32::from(w);
        not_worse += u32::from(nw);
    }
    (worse, not_worse, when, cleared)
}

/// Scores in [0, 1] (log-normal around 0.9 with the given spread, clamped), canary
/// `lower` below baseline; "canary mean not more than 2 points below baseline", and the naive
/// 15-minute `mean(canary) >= mean(baseline) - 2%`. Each 10 s is one bucket, as in the store.
fn mean_case(runs: u32, seed: u64, lower: f64, spread: f64) -> (Tally, f64) {
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let mut widths = Vec::new();
    for _ in 0..runs {
        t.runs += 1;
        let (mut c, mut b) = (
            cutover_core::sequential::Tally::default(),
            cutover_core::sequential::Tally::default(),
        );
        let mut window: std::collections::VecDeque<[(f64, u64); 2]> = Default::default();
        let (mut worse, mut not_worse, mut naive_fail) = (None, None, false);
        for look in 1..=360 {
            let mut arms = [(0.0, 0.0, 0u64), (0.0, 0.0, 0u64)];
            for _ in 0..2_000 {
                let canary = rng.uniform() < 0.05;
                let v = (0.9 * (spread * rng.normal()).exp()).clamp(0.0, 1.0);
                let v = if canary { (v - lower).max(0.0) } else { v };
                let arm = &mut arms[usize::from(!canary)];
                arm.0 += v;
                arm.1 += v * v;
                arm.2 += 1;
            }
            for (tally, (sum, squares, n)) in [&mut c, &mut b].into_iter().zip(arms) {
                tally.then(&cutover_core::sequential::Tally::block(
                    n,
                    0,
                    sum,
                    Some(squares),
                    None,
                    0.0,
                ));
            }
            window.push_back(arms.map(|(s, _, n)| (s, n)));
            if window.len() > 90 {
                window.pop_front();
            }
            let minutes = look as f64 / 6.0;
            let r = compare_means(&c, &b, [0.0, 1.0], Worse::Below, 0.02, 0.05);
            if r.finding == Finding::Worse && worse.is_none() {
                worse = Some(minutes);
            }
            if r.finding == Finding::NotWorse && not_worse.is_none() {
                not_worse = Some(minutes);
            }
            if look == 360 {
                widths.extend(r.low.zip(r.high).map(|(l, h)| h - l));
            }
            let mean = |i: usize| {
                let (s, n) = window
                    .iter()
                    .fold((0.0, 0u64), |(s, n), w| (s + w[i].0, n + w[i].1));
                s / n.max(1) as f64
            };
            naive_fail |= mean(0) < mean(1) - 0.02;
        }
        t.ever_worse += u32::from(worse.is_some());
        t.ever_not_worse += u32::from(not_worse.is_some());
        t.naive_ever_fail += u32::from(naive_fail);
        t.first_worse.extend(worse);
        t.first_not_worse.extend(not_worse);
    }
    (t, median(&mut widths).unwrap_or(f64::NAN))
}

fn srm_case(runs: u32, seed: u64, share: f64) -> u32 {
    let mut rng = Rng(seed);
    let mut off = 0;
    for _ in 0..runs {
        let (mut c, mut b) = (0u64, 0u64);
        let mut found = false;
        for _ in 1..=360 {
            for _ in 0..2_000 {
                if rng.uniform() < share {
                    c += 1;
                } else {
                    b += 1;
                }
            }
            found |= split_is_off(c, b, 0.05, 0.01);
        }
        off += u32::from(found);
    }
    off
}

fn pct(n: u32, of: u32) -> String {
    format!("{:.1}%", 100.0 * n as f64 / of.max(1) as f64)
}

fn minutes(v: Option<f64>) -> String {
    v.map_or("-".into(), |m| format!("{m:.0} min"))
}

fn main() {
    let runs: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    println!(
        "| case ({runs} seeded one-hour runs each) | ever WORSE | ever NOT WORSE | median time to verdict | naive gate ever FAIL |"
    );
    println!("|---|---|---|---|---|");
    for (name, seed, heavy, slower, margin) in [
        ("healthy canary, log-normal", 1, false, 1.0, 0.10),
        ("healthy canary, heavy tail", 2, true, 1.0, 0.10),
        ("canary 20% slower, log-normal", 3, false, 1.2, 0.10),
        ("canary 20% slower, heavy tail", 4, true, 1.2, 0.10),
        (
            "canary 5% slower (within the 10% margin)",
            5,
            false,
            1.05,
            0.10,
        ),
        ("canary 10% slower, no margin", 11, false, 1.10, 0.0),
        ("canary 20% slower, no margin", 12, false, 1.20, 0.0),
    ] {
        let mut t = latency_case(runs, seed, heavy, slower, margin);
        let first = if slower > 1.0 + margin {
            format!("WORSE after {}", minutes(median(&mut t.first_worse)))
        } else {
            format!(
                "NOT WORSE after {}",
                minutes(median(&mut t.first_not_worse))
            )
        };
        println!(
            "| p95 {name} | {} | {} | {first} | {} |",
            pct(t.ever_worse, t.runs),
            pct(t.ever_not_worse, t.runs),
            pct(t.naive_ever_fail, t.runs)
        );
    }
    for (name, seed, rate) in [
        ("errors 1% vs 1%, half-point margin", 6, 0.01),
        ("errors 3% vs 1%, half-point margin", 7, 0.03),
    ] {
        let (w, nw, mut when, mut cleared) = rate_case(runs, seed, rate);
        let first = if rate > 0.015 {
            format!("WORSE after {}", minutes(median(&mut when)))
        } else {
            format!("NOT WORSE after {}", minutes(median(&mut cleared)))
        };
        println!(
            "| {name} | {} | {} | {first} | |",
            pct(w, runs),
            pct(nw, runs)
        );
    }
    for (name, seed, lower, spread) in [
        (
            "quality 0.90 vs 0.90, spread 0.05, 2-point margin",
            13,
            0.0,
            0.05,
        ),
        (
            "quality 0.90 vs 0.90, spread 0.20, 2-point margin",
            14,
            0.0,
            0.20,
        ),
        ("quality 1 point lower (within the margin)", 15, 0.01, 0.05),
        ("quality 2 points lower (on the margin)", 17, 0.02, 0.05),
        ("quality 4 points lower, 2-point margin", 16, 0.04, 0.05),
    ] {
        let (mut t, width) = mean_case(runs, seed, lower, spread);
        let first = if lower == 0.02 {
            "neither is right".to_string()
        } else if lower > 0.02 {
            format!("WORSE after {}", minutes(median(&mut t.first_worse)))
        } else {
            format!(
                "NOT WORSE after {}",
                minutes(median(&mut t.first_not_worse))
            )
        };
        println!(
            "| {name} (interval at 1 h: {:.1} points wide) | {} | {} | {first} | {} |",
            100.0 * width,
            pct(t.ever_worse, t.runs),
            pct(t.ever_not_worse, t.runs),
            pct(t.naive_ever_fail, t.runs)
        );
    }
    println!();
    println!("| split check (alpha 1%, expected 5% canary) | flagged |");
    println!("|---|---|");
    for (name, seed, share) in [
        ("5.0% observed", 8, 0.05),
        ("5.5% observed", 9, 0.055),
        ("6.0% observed", 10, 0.06),
    ] {
        println!("| {name} | {} |", pct(srm_case(runs, seed, share), runs));
    }
}
