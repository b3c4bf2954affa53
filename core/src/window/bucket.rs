//! One time bucket of one series: counts, sums and a quantile sketch, all mergeable exactly, so
//! windows, rollups and replicas combine by merging buckets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sketch::Sketch;
use crate::query::Aggregate;
use crate::time::Millis;

/// Relative accuracy of every quantile: within 1% of the exact value at the same rank.
pub const RELATIVE_ERROR: f64 = 0.01;

/// Whether `candidate` should replace `current` as the latest sample. Ties on the timestamp
/// go to the larger value so the answer does not depend on arrival order.
fn later(candidate: (Millis, f64), current: Option<(Millis, f64)>) -> bool {
    current.is_none_or(|(t, v)| candidate.0 > t || (candidate.0 == t && candidate.1 > v))
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub count: u64,
    pub sum: f64,
    /// The sum of the samples' squares (a bounded mean's spread); absent from buckets written
    /// before it was kept, and then unknown for anything merged with them.
    #[serde(default)]
    pub squares: Option<f64>,
    pub max: Option<f64>,
    /// The smallest sample (absent from buckets written before it was kept).
    #[serde(default)]
    pub min: Option<f64>,
    /// Latest sample (by its timestamp) and its value: gauges report this.
    pub last: Option<(Millis, f64)>,
    /// Ratio metrics: how many samples were true.
    pub trues: u64,
    /// Category metrics: samples per value.
    pub categories: BTreeMap<String, u64>,
    /// Distributions and gauges.
    pub sketch: Option<Sketch>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("trues", &self.trues)
            .finish_non_exhaustive()
    }
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            count: 0,
            sum: 0.0,
            squares: Some(0.0),
            max: None,
            min: None,
            last: None,
            trues: 0,
            categories: BTreeMap::new(),
            sketch: None,
        }
    }
}

impl Bucket {
    pub fn add_number(&mut self, ts: Millis, v: f64, sketched: bool) {
        self.add_numbers(ts, v, 1, sketched);
    }

    /// `n` samples of the same value (a histogram's bucket), as `n` calls of `add_number`
    /// would record them.
    pub fn add_numbers(&mut self, ts: Millis, v: f64, n: u64, sketched: bool) {
        if n == 0 {
            return;
        }
        self.count = self.count.saturating_add(n);
        self.sum += v * n as f64;
        if let Some(q) = &mut self.squares {
            *q += v * v * n as f64;
        }
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        if later((ts, v), self.last) {
            self.last = Some((ts, v));
        }
        if sketched {
            self.sketch.get_or_insert_with(Sketch::default).add(v, n);
        }
    }

    pub fn add_flag(&mut self, yes: bool) {
        self.add_flags(yes, 1);
    }

    pub fn add_flags(&mut self, yes: bool, n: u64) {
        self.count = self.count.saturating_add(n);
        if yes {
            self.trues = self.trues.saturating_add(n);
        }
    }

    pub fn add_category(&mut self, value: &str) {
        self.add_categories(value, 1);
    }

    pub fn add_categories(&mut self, value: &str, n: u64) {
        if n == 0 {
            return;
        }
        self.count = self.count.saturating_add(n);
        match self.categories.get_mut(value) {
            Some(k) => *k = k.saturating_add(n),
            None => {
                self.categories.insert(value.to_string(), n);
            }
        }
    }

    /// Adds `other` into `self`: the result is what one bucket holding both sets of samples
    /// would hold (exactly, for the sketch too: DDSketch merges bin by bin).
    pub fn merge(&mut self, other: &Bucket) {
        self.merge_except_sketch(other);
        if let Some(theirs) = &other.sketch {
            self.merge_sketch(theirs);
        }
    }

    /// Adds a sketch's samples to this bucket's sketch (its counts are merged apart).
    pub fn merge_sketch(&mut self, theirs: &Sketch) {
        match &mut self.sketch {
            Some(mine) => mine.merge(theirs),
            None => self.sketch = Some(theirs.clone()),
        }
    }

    /// `merge` but for the sketch: for a read whose sketches were merged once and kept.
    pub fn merge_except_sketch(&mut self, other: &Bucket) {
        self.count += other.count;
        self.sum += other.sum;
        self.squares = self.squares.zip(other.squares).map(|(a, b)| a + b);
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(theirs) = other.last
            && later(theirs, self.last)
        {
            self.last = Some(theirs);
        }
        self.trues += other.trues;
        for (k, n) in &other.categories {
            *self.categories.entry(k.clone()).or_default() += n;
        }
    }

    /// Packs the sketch of a bucket that has closed (see `Sketch::pack`).
    pub fn pack(&mut self) {
        if let Some(sketch) = &mut self.sketch {
            sketch.pack();
        }
    }

    /// The aggregate over this bucket's samples; `None` when there are none.
    pub fn aggregate(&self, aggregate: &Aggregate) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let value = match aggregate {
            Aggregate::Quantile(q) => self.sketch.as_ref()?.quantile(*q)?,
            Aggregate::Rate => self.trues as f64 / n,
            Aggregate::Share(v) => self.categories.get(v).copied().unwrap_or(0) as f64 / n,
            Aggregate::Mean => self.sum / n,
            Aggregate::Count => n,
            Aggregate::Sum => self.sum,
            Aggregate::Max => self.max?,
            Aggregate::Min => self.min?,
            Aggregate::Last => self.last?.1,
            // A rate needs the window's length: the store divides a count or a sum.
            Aggregate::PerSecond => return None,
        };
        value.is_finite().then_some(value)
    }
}
