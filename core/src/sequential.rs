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

/// One block of values (a time bucket, or several merged as one): how many, their sum and,
/// when kept, the sum of their squares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub sum: f64,
    /// `None` when some values' squares were not kept (buckets written before they were).
    pub squares: Option<f64>,
}

impl Default for Moments {
    /// No values: their squares are known (none).
    fn default() -> Self {
        Moments {
            count: 0,
            sum: 0.0,
            squares: Some(0.0),
        }
    }
}

impl Moments {
    /// Both blocks as one.
    pub fn merge(&mut self, other: &Moments) {
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.squares = self.squares.zip(other.squares).map(|(a, b)| a + b);
    }

    /// `sum (x - centre)^2` over the block's values, or `None` if their squares are unknown.
    fn around(&self, centre: f64) -> Option<f64> {
        let n = self.count as f64;
        self.squares
            .map(|q| (q - 2.0 * centre * self.sum + n * centre * centre).max(0.0))
    }
}

/// What an empirical-Bernstein sequence for a mean needs of the values in the order they came:
/// `V = sum (x_i - c_i)^2`, each value's centre `c_i` known before it came (Howard et al.
/// 2021, Theorem 4). Values come in blocks (time buckets, in time order); every value of a
/// block is centred on the mean of all blocks before it, and the first block on the middle of
/// the range, which only the comparison knows: so that block is kept as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spread {
    first: Moments,
    /// `sum (x - c)^2` over the later blocks' values whose squares were kept.
    later: f64,
    /// Later values whose squares were not kept: each counts the most `(x - c)^2` can be, the
    /// range squared.
    unknown: u64,
}

impl Spread {
    /// A single block.
    pub fn block(m: Moments) -> Spread {
        Spread {
            first: m,
            later: 0.0,
            unknown: 0,
        }
    }

    /// Appends `next`, a block that came after everything so far; `before` is what came
    /// before it (its mean is the block's centre).
    pub fn then(&mut self, before: &Moments, next: &Moments) {
        if next.count == 0 {
            return;
        }
        if before.count == 0 {
            *self = Spread::block(*next);
            return;
        }
        let centre = before.sum / before.count as f64;
        match next.around(centre) {
            Some(v) => self.later += v,
            None => self.unknown = self.unknown.saturating_add(next.count),
        }
    }

    /// `V` for values bounded in `range`: an upper bound on `sum (x_i - c_i)^2` (the first
    /// block centred on the range's middle).
    pub fn variance(&self, range: [f64; 2]) -> f64 {
        let c = range[1] - range[0];
        let middle = (range[0] + range[1]) / 2.0;
        let first = self
            .first
            .around(middle)
            .unwrap_or(self.first.count as f64 * c * c / 4.0);
        first + self.later + self.unknown as f64 * c * c
    }
}

/// What a comparison reads of one arm since the stage began: how many events, how many
/// were yes (ratio metrics), their sum and squares (means), the sketch of their values, and
/// their spread in the order they came (means).
#[derive(Clone, Default)]
pub struct Tally {
    pub count: u64,
    pub trues: u64,
    pub sum: f64,
    /// The sum of the values' squares; `None` when some were not kept.
    pub squares: Option<f64>,
    pub sketch: Option<sketches_ddsketch::DDSketch>,
    /// The sketch's relative error.
    pub relative: f64,
    pub spread: Spread,
}

impl Tally {
    /// One block's tally.
    pub fn block(
        count: u64,
        trues: u64,
        sum: f64,
        squares: Option<f64>,
        sketch: Option<sketches_ddsketch::DDSketch>,
        relative: f64,
    ) -> Tally {
        Tally {
            count,
            trues,
            sum,
            squares,
            sketch,
            relative,
            spread: Spread::block(Moments {
                count,
                sum,
                squares,
            }),
        }
    }

    pub fn moments(&self) -> Moments {
        Moments {
            count: self.count,
            sum: self.sum,
            squares: self.squares,
        }
    }

    /// Adds `other`'s events as if both were one block: what one tally over both would hold
    /// (label sets of the same bucket). The order within is forgotten, so the spread is that
    /// of one block.
    pub fn merge(&mut self, other: &Tally) {
        self.absorb(other);
        self.spread = Spread::block(self.moments());
    }

    /// Adds `next`, which came after everything so far (the next bucket in time), keeping the
    /// order the spread of a mean rests on.
    pub fn then(&mut self, next: &Tally) {
        let before = self.moments();
        self.spread.then(&before, &next.moments());
        self.absorb(next);
    }

    fn absorb(&mut self, other: &Tally) {
        let empty = self.count == 0 && self.sketch.is_none();
        self.count = self.count.saturating_add(other.count);
        self.trues = self.trues.saturating_add(other.trues);
        self.sum += other.sum;
        self.squares = if empty {
            other.squares
        } else {
            self.squares.zip(other.squares).map(|(a, b)| a + b)
        };
        self.relative = self.relative.max(other.relative);
        if let Some(theirs) = &other.sketch {
            match &mut self.sketch {
                // Same configuration everywhere, so merging cannot fail.
                Some(mine) => {
                    let _ = mine.merge(theirs);
                }
                None => self.sketch = Some(theirs.clone()),
            }
        }
    }
}

impl Ranked for Tally {
    fn count(&self) -> u64 {
        self.sketch.as_ref().map_or(0, |s| s.count() as u64)
    }

    fn value_at_index(&self, index: u64) -> Option<f64> {
        let sketch = self.sketch.as_ref()?;
        let n = sketch.count() as u64;
        if index >= n {
            return None;
        }
        // The sketch answers rank floor(q (n - 1)): aim at the middle of the index's step so
        // rounding never lands on the one below.
        let q = if n <= 1 {
            0.0
        } else {
            ((index as f64 + 0.5) / (n - 1) as f64).clamp(0.0, 1.0)
        };
        sketch.quantile(q).ok().flatten()
    }

    fn relative(&self) -> f64 {
        self.relative
    }
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

/// Events each arm needs before the time to a decision is estimated.
pub const ESTIMATE_FROM: u64 = 1_000;

/// Which way is worse for the canary: above the baseline (latency, errors) or below it
/// (quality, hit rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Worse {
    Above,
    Below,
}

/// What the interval is of: canary / baseline (quantiles), or canary - baseline (rates and
/// means, in the metric's units: 0.005 is half a percentage point of a rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Ratio,
    Difference,
}

/// A comparison's verdict with the interval behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub finding: Finding,
    pub measure: Measure,
    pub worse: Worse,
    /// The tolerated departure: a ratio's fraction (0.10: 10% above or below baseline) or a
    /// difference in the metric's units.
    pub margin: f64,
    /// The interval of the ratio or difference; `None` for an end not yet known.
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub canary_n: u64,
    pub baseline_n: u64,
}

impl Comparison {
    /// The line past which the canary is worse: `1.10` for a ratio with 10% allowed above,
    /// `-0.02` for a difference with 0.02 allowed below.
    pub fn limit(&self) -> f64 {
        let m = match self.worse {
            Worse::Above => self.margin,
            Worse::Below => -self.margin,
        };
        match self.measure {
            Measure::Ratio => 1.0 + m,
            Measure::Difference => m,
        }
    }

    fn judged(mut self) -> Comparison {
        let limit = self.limit();
        let (beyond, within) = match self.worse {
            // Worse when the whole interval is past the limit; not worse when none of it is.
            Worse::Above => (
                self.low.is_some_and(|l| l > limit),
                self.high.is_some_and(|h| h <= limit),
            ),
            Worse::Below => (
                self.high.is_some_and(|h| h < limit),
                self.low.is_some_and(|l| l >= limit),
            ),
        };
        self.finding = if beyond {
            Finding::Worse
        } else if within {
            Finding::NotWorse
        } else {
            Finding::NotYetKnown
        };
        self
    }

    /// Whether each arm has enough events that its estimate no longer swings wildly: before
    /// that, an estimate of when a decision comes would be noise.
    pub fn estimable(&self) -> bool {
        self.canary_n.min(self.baseline_n) >= ESTIMATE_FROM
    }

    /// How much longer until a decision if the estimate stays where it is and events keep
    /// coming at the rate they came in `elapsed`: the interval narrows about as one over the
    /// square root of the samples (the sequence's log factor ignored, so this errs short).
    /// `None` when it cannot be said (an open end, or the estimate sits on the limit).
    pub fn decision_in(&self, elapsed: crate::time::Millis) -> Option<crate::time::Millis> {
        if self.finding != Finding::NotYetKnown || elapsed <= 0 || !self.estimable() {
            return None;
        }
        let (low, high) = (self.low?, self.high?);
        let (centre, half) = ((low + high) / 2.0, (high - low) / 2.0);
        let gap = (centre - self.limit()).abs();
        if gap <= f64::EPSILON * half.max(1.0) {
            return None;
        }
        let factor = (half / gap).powi(2);
        let more = elapsed as f64 * (factor - 1.0).max(0.0);
        (more.is_finite() && more < 30.0 * crate::time::DAY as f64).then_some(more.round() as i64)
    }
}

/// Canary's `q`-quantile against baseline's, each sequence at `alpha / 2`: the interval of
/// their ratio, judged against `1 + margin` (worse above) or `1 - margin` (worse below). For
/// positive values (latencies, sizes).
pub fn compare_quantiles(
    canary: &impl Ranked,
    baseline: &impl Ranked,
    q: f64,
    worse: Worse,
    margin: f64,
    alpha: f64,
) -> Comparison {
    let (cl, ch) = quantile_interval(canary, q, alpha / 2.0);
    let (bl, bh) = quantile_interval(baseline, q, alpha / 2.0);
    let ratio = |c: Option<f64>, b: Option<f64>| match (c, b) {
        (Some(c), Some(b)) if b > 0.0 => Some(c / b),
        _ => None,
    };
    Comparison {
        finding: Finding::NotYetKnown,
        measure: Measure::Ratio,
        worse,
        margin,
        low: ratio(cl, bh),
        high: ratio(ch, bl),
        canary_n: canary.count(),
        baseline_n: baseline.count(),
    }
    .judged()
}

/// Canary's rate (`canary_hits` of `canary_n`) against baseline's, each sequence at
/// `alpha / 2`: the interval of their difference, judged against `margin` points (0.005 is
/// half a percentage point) above or below.
pub fn compare_rates(
    canary_hits: u64,
    canary_n: u64,
    baseline_hits: u64,
    baseline_n: u64,
    worse: Worse,
    margin: f64,
    alpha: f64,
) -> Comparison {
    let (cl, ch) = rate_interval(canary_hits, canary_n, alpha / 2.0);
    let (bl, bh) = rate_interval(baseline_hits, baseline_n, alpha / 2.0);
    Comparison {
        finding: Finding::NotYetKnown,
        measure: Measure::Difference,
        worse,
        margin,
        low: Some(cl - bh),
        high: Some(ch - bl),
        canary_n,
        baseline_n,
    }
    .judged()
}

/// The stitched boundary's spacing and the spread of its error budget over epochs (Howard et
/// al. 2021, eq. 10: `eta = 2`, `s = 1.4`, their recommended values).
const ETA: f64 = 2.0;
const S: f64 = 1.4;
/// Riemann's zeta at `S`.
const ZETA_S: f64 = 3.105_547_278;

/// The stitched sub-gamma boundary (Howard et al. 2021, Theorem 1 and eq. 10): for a process
/// sub-gamma with variance process `v` and scale `c`, `S_t >= boundary(V_t)` ever happens with
/// probability at most `alpha`. Valid for `v >= m`; below `m` the boundary at `m` stands.
fn stitched(v: f64, m: f64, c: f64, alpha: f64) -> f64 {
    let v = v.max(m);
    let k1 = (ETA.powf(0.25) + ETA.powf(-0.25)) / std::f64::consts::SQRT_2;
    let k2 = (ETA.sqrt() + 1.0) / 2.0;
    let l = S * (ETA * v / m).ln().ln() + (ZETA_S / (alpha * ETA.ln().powf(S))).ln();
    (k1 * k1 * v * l + k2 * k2 * c * c * l * l).sqrt() + c * k2 * l
}

/// Where the mean of values bounded in `range` lies after `n` of them summing to `sum` whose
/// spread in order is `spread`: an empirical-Bernstein confidence sequence at `alpha`, valid
/// for any distribution inside the range at every `n` at once, and as narrow as the values'
/// real spread allows (Howard, Ramdas, McAuliffe and Sekhon 2021, Theorem 4: `sum (x_i - mu)`
/// is sub-exponential with variance process `V` and scale `b - a`, so sub-gamma; the stitched
/// boundary on each side at `alpha / 2`). `None` when there are none.
pub fn mean_interval(
    sum: f64,
    n: u64,
    spread: &Spread,
    range: [f64; 2],
    alpha: f64,
) -> Option<(f64, f64)> {
    if n == 0 || range[1] <= range[0] {
        return None;
    }
    let c = range[1] - range[0];
    // The boundary is tight from `V` of about one value at the range's full spread on.
    let radius = stitched(spread.variance(range), c * c, c, alpha / 2.0) / n as f64;
    let mean = sum / n as f64;
    Some(((mean - radius).max(range[0]), (mean + radius).min(range[1])))
}

/// Canary's mean against baseline's, for values bounded in `range`, each sequence at
/// `alpha / 2`: the interval of their difference, judged against `margin` above or below.
pub fn compare_means(
    canary: &Tally,
    baseline: &Tally,
    range: [f64; 2],
    worse: Worse,
    margin: f64,
    alpha: f64,
) -> Comparison {
    let interval = |t: &Tally| mean_interval(t.sum, t.count, &t.spread, range, alpha / 2.0);
    let (low, high) = match (interval(canary), interval(baseline)) {
        (Some((cl, ch)), Some((bl, bh))) => (Some(cl - bh), Some(ch - bl)),
        _ => (None, None),
    };
    Comparison {
        finding: Finding::NotYetKnown,
        measure: Measure::Difference,
        worse,
        margin,
        low,
        high,
        canary_n: canary.count,
        baseline_n: baseline.count,
    }
    .judged()
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
pub(crate) mod tests;
