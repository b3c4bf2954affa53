//! The arithmetic of OpenTelemetry metrics, without the wire: histogram buckets as values a
//! sketch takes, cumulative points turned into deltas per stream, and unit conversion. The
//! server decodes OTLP into these types (`server/src/sources/otlp.rs`).
//!
//! Error bound: an OTLP exponential histogram at scale `s` has buckets `(b^i, b^(i+1)]` with
//! `b = 2^(2^-s)`. Every value of a bucket is taken as `2·l·u/(l+u)` of its bounds, which is
//! within `(b-1)/(b+1)` of any value in it (relative); the sketch adds its own 1 %
//! ([`crate::window::RELATIVE_ERROR`]). So a quantile read from exponential buckets is within
//! `(1 + (b-1)/(b+1))·1.01 - 1` of the exact one: 1.1 % at scale 8, 2.1 % at scale 5, 5.4 %
//! at scale 3. Explicit-bucket histograms are as exact as their bounds: the same
//! `(u-l)/(u+l)` per bucket, unbounded for a bucket with no finite lower or upper bound
//! (reported at its known bound, or the point's min or max when given).

use std::collections::HashMap;

use crate::time::Millis;

mod units;
pub use units::unit_factor;

#[cfg(test)]
mod tests;

/// Positive buckets of an exponential histogram (negative ones are refused: the metrics
/// cutover keeps never go below zero) and the zero bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpBuckets {
    pub scale: i32,
    pub zero_count: u64,
    /// Index of `counts[0]`.
    pub offset: i32,
    pub counts: Vec<u64>,
}

/// An explicit-bucket histogram: `counts.len() == bounds.len() + 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplicitBuckets {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Buckets {
    Exponential(ExpBuckets),
    Explicit(ExplicitBuckets),
}

/// One histogram point's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub buckets: Buckets,
}

/// What a point holds: a number (a sum's or gauge's) or a histogram.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    Number(f64),
    Histogram(Histogram),
}

/// The largest scale OTLP defines, and the smallest.
pub const MAX_SCALE: i32 = 20;
pub const MIN_SCALE: i32 = -10;

/// The relative error of taking any value of a bucket at `scale` as its representative.
pub fn exp_bucket_error(scale: i32) -> f64 {
    let base = base(scale);
    (base - 1.0) / (base + 1.0)
}

fn base(scale: i32) -> f64 {
    (2f64.powi(-scale)).exp2()
}

/// The value standing for bucket `index` at `scale`: the point of `(l, u]` with the least
/// largest relative error to any value in it.
pub fn exp_bucket_value(scale: i32, index: i32) -> f64 {
    let step = 2f64.powi(-scale);
    let lower = (f64::from(index) * step).exp2();
    let upper = (f64::from(index + 1) * step).exp2();
    representative(lower, upper)
}

fn representative(lower: f64, upper: f64) -> f64 {
    if lower <= 0.0 || !lower.is_finite() {
        return upper.max(0.0);
    }
    if !upper.is_finite() {
        return lower;
    }
    2.0 * lower * upper / (lower + upper)
}

impl Histogram {
    /// Each non-empty bucket as (value, count), values in the histogram's own unit.
    pub fn values(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::new();
        match &self.buckets {
            Buckets::Exponential(e) => {
                if e.zero_count > 0 {
                    out.push((0.0, e.zero_count));
                }
                for (k, &n) in e.counts.iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    let index = i64::from(e.offset) + k as i64;
                    let Ok(index) = i32::try_from(index) else {
                        continue;
                    };
                    out.push((exp_bucket_value(e.scale, index), n));
                }
            }
            Buckets::Explicit(x) => {
                for (k, &n) in x.counts.iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    let lower = if k == 0 {
                        self.min.unwrap_or(0.0).max(0.0)
                    } else {
                        x.bounds[k - 1]
                    };
                    let upper = match x.bounds.get(k) {
                        Some(&b) => b,
                        None => self.max.unwrap_or(f64::INFINITY),
                    };
                    out.push((representative(lower, upper), n));
                }
            }
        }
        out
    }

    /// `self - earlier` bucket by bucket, `None` if any count went down (the stream was
    /// reset) or the bucket layouts cannot be compared.
    fn minus(&self, earlier: &Histogram) -> Option<Histogram> {
        let count = self.count.checked_sub(earlier.count)?;
        let sum = match (self.sum, earlier.sum) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        };
        let buckets = match (&self.buckets, &earlier.buckets) {
            (Buckets::Explicit(a), Buckets::Explicit(b)) => {
                if a.bounds != b.bounds || a.counts.len() != b.counts.len() {
                    return None;
                }
                let counts = a
                    .counts
                    .iter()
                    .zip(&b.counts)
                    .map(|(x, y)| x.checked_sub(*y))
                    .collect::<Option<Vec<u64>>>()?;
                Buckets::Explicit(ExplicitBuckets {
                    bounds: a.bounds.clone(),
                    counts,
                })
            }
            (Buckets::Exponential(a), Buckets::Exponential(b)) => {
                // A cumulative exponential histogram may lower its scale as its range grows:
                // compare both at the lower one.
                let scale = a.scale.min(b.scale);
                let a = a.at_scale(scale)?;
                let b = b.at_scale(scale)?;
                Buckets::Exponential(a.minus(&b)?)
            }
            _ => return None,
        };
        Some(Histogram {
            count,
            sum,
            // A delta's min and max are not known from two cumulative ones.
            min: None,
            max: None,
            buckets,
        })
    }
}

/// Most buckets a histogram may hold after rescaling (the SDK's default is 160).
const MAX_BUCKETS: usize = 1 << 14;

impl ExpBuckets {
    /// The same counts at a coarser `scale` (never a finer one): bucket `i` goes to
    /// `i >> (self.scale - scale)`.
    pub fn at_scale(&self, scale: i32) -> Option<ExpBuckets> {
        let shift = u32::try_from(self.scale.checked_sub(scale)?).ok()?;
        if shift == 0 {
            return Some(self.clone());
        }
        if shift >= 32 {
            let total = self
                .counts
                .iter()
                .try_fold(0u64, |a, n| a.checked_add(*n))?;
            return Some(ExpBuckets {
                scale,
                zero_count: self.zero_count,
                offset: if self.offset < 0 { -1 } else { 0 },
                counts: if total > 0 { vec![total] } else { Vec::new() },
            });
        }
        let offset = self.offset >> shift;
        let mut counts: Vec<u64> = Vec::new();
        for (k, &n) in self.counts.iter().enumerate() {
            let index = i64::from(self.offset) + k as i64;
            let to = usize::try_from((index >> shift) - i64::from(offset)).ok()?;
            if to >= MAX_BUCKETS {
                return None;
            }
            if counts.len() <= to {
                counts.resize(to + 1, 0);
            }
            counts[to] = counts[to].checked_add(n)?;
        }
        Some(ExpBuckets {
            scale,
            zero_count: self.zero_count,
            offset,
            counts,
        })
    }

    /// Bucket-wise difference at the same scale; `None` where a count went down.
    fn minus(&self, earlier: &ExpBuckets) -> Option<ExpBuckets> {
        let zero_count = self.zero_count.checked_sub(earlier.zero_count)?;
        let count_at = |b: &ExpBuckets, index: i64| -> u64 {
            usize::try_from(index - i64::from(b.offset))
                .ok()
                .and_then(|k| b.counts.get(k).copied())
                .unwrap_or(0)
        };
        // Every index the earlier point had must still be covered.
        for (k, &n) in earlier.counts.iter().enumerate() {
            let index = i64::from(earlier.offset) + k as i64;
            if n > count_at(self, index) {
                return None;
            }
        }
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(k, &n)| n - count_at(earlier, i64::from(self.offset) + k as i64))
            .collect();
        Some(ExpBuckets {
            scale: self.scale,
            zero_count,
            offset: self.offset,
            counts,
        })
    }
}

impl PointValue {
    fn minus(&self, earlier: &PointValue) -> Option<PointValue> {
        match (self, earlier) {
            (PointValue::Number(a), PointValue::Number(b)) => {
                (a >= b).then(|| PointValue::Number(a - b))
            }
            (PointValue::Histogram(a), PointValue::Histogram(b)) => {
                a.minus(b).map(PointValue::Histogram)
            }
            _ => None,
        }
    }
}

/// The last cumulative point seen of one stream.
#[derive(Debug, Clone)]
struct Seen {
    start_ns: u64,
    time_ns: u64,
    value: PointValue,
    /// Server time it was seen, for eviction.
    at: Millis,
}

/// What became of a cumulative point.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// What happened since the stream's previous point (or since its start, for a stream
    /// that started recently or was restarted).
    New(PointValue),
    /// The first point of a stream that began long ago: its total is history, not news, so
    /// it is kept as the baseline and counts nothing (else every restart of cutover, or a
    /// sender met for the first time, would read as a spike).
    Baseline,
    /// Not newer than the point already seen (a retry, or out of order): counts nothing.
    Stale,
}

/// Cumulative points turned into deltas, per stream (a stream is a metric and the whole set
/// of resource, scope and point attributes, hashed by the caller). At most `capacity`
/// streams are remembered; the least recently seen is forgotten first (its next point is
/// then a first point again).
#[derive(Debug, Clone)]
pub struct Deltas {
    streams: HashMap<u64, Seen>,
    capacity: usize,
}

impl Deltas {
    pub fn new(capacity: usize) -> Deltas {
        Deltas {
            streams: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The delta a cumulative point of `stream` carries. `recent_ns`: a stream whose start
    /// is at or after it began recently enough that its whole total is news. `now`: server
    /// time, for eviction.
    pub fn delta(
        &mut self,
        stream: u64,
        start_ns: u64,
        time_ns: u64,
        value: PointValue,
        recent_ns: u64,
        now: Millis,
    ) -> Delta {
        let fresh = start_ns != 0 && start_ns >= recent_ns;
        let out = match self.streams.get(&stream) {
            None => {
                if fresh {
                    Delta::New(value.clone())
                } else {
                    Delta::Baseline
                }
            }
            Some(seen) if time_ns <= seen.time_ns => return Delta::Stale,
            // A new start time is a restart of the sender: the total since then is all news.
            Some(seen) if start_ns != 0 && start_ns != seen.start_ns => {
                if start_ns > seen.start_ns {
                    Delta::New(value.clone())
                } else {
                    return Delta::Stale;
                }
            }
            Some(seen) => match value.minus(&seen.value) {
                Some(d) => Delta::New(d),
                // A count went down without a new start time: a reset all the same.
                None => Delta::New(value.clone()),
            },
        };
        if !self.streams.contains_key(&stream) && self.streams.len() >= self.capacity {
            self.evict_oldest();
        }
        self.streams.insert(
            stream,
            Seen {
                start_ns,
                time_ns,
                value,
                at: now,
            },
        );
        out
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .streams
            .iter()
            .min_by_key(|(_, s)| s.at)
            .map(|(k, _)| *k)
        {
            self.streams.remove(&oldest);
        }
    }
}
