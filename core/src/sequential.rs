//! Comparisons that stay valid however often they are looked at: canary against baseline, on
//! a quantile of a distribution or on a rate, each *worse*, *not worse* or *not yet known*,
//! with a chance of a wrong conclusive verdict of at most `alpha` over the whole stage,
//! whether the gate is evaluated once or every second (docs/statistics.md).
//!
//! The building block is Robbins' beta-binomial mixture: for Bernoulli observations with
//! mean `p`, `M_n(p) = B(a + S, b + n - S) / (B(a, b) p^S (1 - p)^(n - S))` is a nonnegative
//! martingale under `p` with `M_0 = 1`, so by Ville's inequality it ever reaches `1/alpha`
//! with probability at most `alpha`. The `p` it has not reached are a confidence sequence for
//! the rate; and since the share of observations at or below a distribution's `q`-quantile is
//! Bernoulli(`q`), the ranks it allows give one for the quantile (Howard and Ramdas, 2022),
//! read from a sketch whose relative error widens it. Two sequences at `alpha / 2` each make a
//! comparison; a split that departs from the one the plan implies is the same test with a
//! known `p` (sample-ratio mismatch).

use serde::{Deserialize, Serialize};

/// The prior's two shapes (Jeffreys): the mixture is valid for any; these are tight early.
const A: f64 = 0.5;
const B: f64 = 0.5;

fn ln_beta(a: f64, b: f64) -> f64 {
    libm::lgamma(a) + libm::lgamma(b) - libm::lgamma(a + b)
}

/// `ln M_n(p)` for `s` successes in `n` trials.
pub fn ln_mixture(s: f64, n: f64, p: f64) -> f64 {
    if p <= 0.0 {
        return if s > 0.0 {
            f64::INFINITY
        } else {
            ln_beta(A, B + n) - ln_beta(A, B)
        };
    }
    if p >= 1.0 {
        return if s < n {
            f64::INFINITY
        } else {
            ln_beta(A + n, B) - ln_beta(A, B)
        };
    }
    ln_beta(A + s, B + n - s) - ln_beta(A, B) - s * p.ln() - (n - s) * (1.0 - p).ln()
}

/// The rates not yet ruled out after `s` successes in `n` trials: a confidence sequence,
/// valid at every `n` at once with probability at least `1 - alpha`.
pub fn rate_interval(s: u64, n: u64, alpha: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (s, n) = (s.min(n) as f64, n as f64);
    let bar = (1.0 / alpha).ln();
    let centre = (s + A) / (n + A + B);
    let inside = |p: f64| ln_mixture(s, n, p) < bar;
    // ln M is convex in p with its minimum near the centre: bisect each side.
    let edge = |mut lo: f64, mut hi: f64, lo_inside: bool| {
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if inside(mid) == lo_inside {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if lo_inside { lo } else { hi }
    };
    let lower = if inside(0.0) {
        0.0
    } else {
        edge(centre, 0.0, true)
    };
    let upper = if inside(1.0) {
        1.0
    } else {
        edge(centre, 1.0, true)
    };
    (lower.min(upper), upper.max(lower))
}

/// The counts at or below the `q`-quantile that the sequence still allows after `n`
/// observations: `[lo, hi]`, valid at every `n` at once with probability `1 - alpha`.
pub fn rank_interval(q: f64, n: u64, alpha: f64) -> (u64, u64) {
    if n == 0 {
        return (0, 0);
    }
    let nf = n as f64;
    let bar = (1.0 / alpha).ln();
    let inside = |s: u64| ln_mixture(s as f64, nf, q) < bar;
    let centre = ((q * nf).round() as u64).min(n);
    if !inside(centre) {
        // Too few observations for any count to be ruled in: everything is possible.
        return (0, n);
    }
    // Convex in s: the allowed counts are one run around the centre.
    let search = |mut inner: u64, mut outer: u64| {
        while inner.abs_diff(outer) > 1 {
            let mid = (inner + outer) / 2;
            if inside(mid) {
                inner = mid;
            } else {
                outer = mid;
            }
        }
        inner
    };
    let lo = if inside(0) { 0 } else { search(centre, 0) };
    let hi = if inside(n) { n } else { search(centre, n) };
    (lo, hi)
}

/// A distribution as a sketch holds it: how many values, and the `index`-th smallest
/// (0-based) within `relative` of the true one.
pub trait Ranked {
    fn count(&self) -> u64;
    fn value_at_index(&self, index: u64) -> Option<f64>;
    fn relative(&self) -> f64;
}

/// Where the `q`-quantile of `d` lies: a confidence sequence at `alpha`, the sketch's error
/// folded in. `None` for a bound not yet known (too few values, or beyond the data).
pub fn quantile_interval(d: &impl Ranked, q: f64, alpha: f64) -> (Option<f64>, Option<f64>) {
    let n = d.count();
    let (lo, hi) = rank_interval(q, n, alpha);
    let r = d.relative();
    // With K values at or below the quantile and lo <= K <= hi: at least lo values are at or
    // below it, so it is at least the lo-th smallest; at most hi are, so it is below the
    // (hi + 1)-th. 1-based ranks lo and hi + 1 are 0-based indexes lo - 1 and hi.
    let lower = (lo >= 1)
        .then(|| d.value_at_index(lo - 1))
        .flatten()
        .map(|v| {
            if v >= 0.0 {
                v * (1.0 - r)
            } else {
                v * (1.0 + r)
            }
        });
    let upper = (hi < n).then(|| d.value_at_index(hi)).flatten().map(|v| {
        if v >= 0.0 {
            v * (1.0 + r)
        } else {
            v * (1.0 - r)
        }
    });
    (lower, upper)
}

/// What a comparison says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    Worse,
    NotWorse,
    NotYetKnown,
}

/// A comparison's verdict with the interval of the difference behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub finding: Finding,
    /// Canary's value less the tolerated baseline (ratio - 1 for quantiles, points for
    /// rates): worse above 0, not worse at or below it; `None` for an open end.
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub canary_n: u64,
    pub baseline_n: u64,
}

/// Canary's `q`-quantile against `(1 + margin)` times baseline's, each sequence at `alpha / 2`.
/// Worse when the canary's lower bound is above the baseline's upper bound times
/// `1 + margin`; not worse when the canary's upper bound is at or below the baseline's lower
/// bound times `1 + margin`. For positive values (latencies, sizes).
pub fn compare_quantiles(
    canary: &impl Ranked,
    baseline: &impl Ranked,
    q: f64,
    margin: f64,
    alpha: f64,
) -> Comparison {
    let (cl, ch) = quantile_interval(canary, q, alpha / 2.0);
    let (bl, bh) = quantile_interval(baseline, q, alpha / 2.0);
    let tolerance = 1.0 + margin;
    // The ratio canary / (tolerance x baseline), less one.
    let low = match (cl, bh) {
        (Some(c), Some(b)) if b > 0.0 => Some(c / (tolerance * b) - 1.0),
        _ => None,
    };
    let high = match (ch, bl) {
        (Some(c), Some(b)) if b > 0.0 => Some(c / (tolerance * b) - 1.0),
        _ => None,
    };
    let finding = if low.is_some_and(|l| l > 0.0) {
        Finding::Worse
    } else if high.is_some_and(|h| h <= 0.0) {
        Finding::NotWorse
    } else {
        Finding::NotYetKnown
    };
    Comparison {
        finding,
        low,
        high,
        canary_n: canary.count(),
        baseline_n: baseline.count(),
    }
}

/// Canary's rate (`canary_hits` of `canary_n`) against baseline's plus `margin` (in points of
/// the rate: 0.005 is half a percentage point), each sequence at `alpha / 2`.
pub fn compare_rates(
    canary_hits: u64,
    canary_n: u64,
    baseline_hits: u64,
    baseline_n: u64,
    margin: f64,
    alpha: f64,
) -> Comparison {
    let (cl, ch) = rate_interval(canary_hits, canary_n, alpha / 2.0);
    let (bl, bh) = rate_interval(baseline_hits, baseline_n, alpha / 2.0);
    let low = cl - bh - margin;
    let high = ch - bl - margin;
    let finding = if low > 0.0 {
        Finding::Worse
    } else if high <= 0.0 {
        Finding::NotWorse
    } else {
        Finding::NotYetKnown
    };
    Comparison {
        finding,
        low: Some(low),
        high: Some(high),
        canary_n,
        baseline_n,
    }
}

/// Sample-ratio mismatch: whether `canary` of `canary + baseline` events departs from the
/// expected share beyond chance, however often it is asked (`M_n` past `1/alpha`).
pub fn split_is_off(canary: u64, baseline: u64, expected_share: f64, alpha: f64) -> bool {
    let n = canary + baseline;
    if n == 0 || !(0.0..=1.0).contains(&expected_share) {
        return false;
    }
    ln_mixture(canary as f64, n as f64, expected_share) >= (1.0 / alpha).ln()
}

#[cfg(test)]
mod tests;
