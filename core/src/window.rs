//! Metric windows: every sample lands in a 10 s bucket of its series (metric + label set);
//! buckets older than `fine_retention` roll up into 1 min buckets kept for `coarse_retention`;
//! a window query merges the buckets it covers. Memory is bounded by retention / bucket width
//! per series and by `max_series_per_metric`, never by the number of samples.
//!
//! Bounds (defaults): quantiles within 1% relative error (`bucket::RELATIVE_ERROR`); samples up
//! to 5 min late land in their own bucket, older ones are counted as dropped; timestamps more
//! than 10 s ahead of `now` are refused.
//!
//! Window rule: a query over `window` at `at` merges every fine bucket that overlaps
//! `(at - window, at]` (so the bucket being filled now always counts, and a window is never
//! empty while samples exist inside it) and every rolled-up minute that starts inside it. Fine
//! and coarse buckets never cover the same period (a minute moves to coarse whole), so nothing
//! is counted twice.

mod bucket;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use bucket::{Bucket, RELATIVE_ERROR};

use crate::query::{Aggregate, MetricKind, MetricSource, Selector};
use crate::series::Point;
use crate::time::{DAY, HOUR, MINUTE, Millis, SECOND};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub fine: Millis,
    pub coarse: Millis,
    pub fine_retention: Millis,
    pub coarse_retention: Millis,
    pub max_lateness: Millis,
    pub max_future: Millis,
    pub max_series_per_metric: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            fine: 10 * SECOND,
            coarse: MINUTE,
            fine_retention: HOUR,
            coarse_retention: DAY,
            max_lateness: 5 * MINUTE,
            max_future: 10 * SECOND,
            max_series_per_metric: 64,
        }
    }
}

/// One observation of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub ts: Millis,
    pub value: SampleValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SampleValue {
    Number(f64),
    Flag(bool),
    Category(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("unknown metric \"{0}\"")]
    UnknownMetric(String),
    #[error("{metric}: {reason}")]
    WrongValue { metric: String, reason: String },
    #[error("ts is {ahead_ms} ms in the future")]
    Future { ahead_ms: Millis },
    #[error("ts is older than the {lateness_ms} ms lateness allowance; counted as dropped")]
    Dropped { lateness_ms: Millis },
}

/// A bucket as persisted or shipped between replicas: which series, which period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistedBucket {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub start: Millis,
    pub width: Millis,
    pub bucket: Bucket,
}

#[derive(Debug, Clone, Default)]
struct SeriesData {
    fine: BTreeMap<Millis, Bucket>,
    coarse: BTreeMap<Millis, Bucket>,
}

type SeriesMap = HashMap<String, BTreeMap<BTreeMap<String, String>, SeriesData>>;

#[derive(Debug, Clone)]
pub struct MetricStore {
    config: StoreConfig,
    kinds: HashMap<String, MetricKind>,
    /// metric -> label set -> buckets, from samples recorded here.
    series: SeriesMap,
    /// The same, from buckets other replicas wrote (or this server before a restart): merged
    /// into every query, never exported again, so nothing is written or counted twice.
    remote: SeriesMap,
    dropped: HashMap<String, u64>,
    /// Label pairs the plan's queries select on (`variant="canary"`): kept when a sample is
    /// folded into an overflow set, so every query the plan makes stays exact.
    selected: BTreeSet<(String, String)>,
    /// Samples folded into an overflow set because their metric had no room for a new set.
    overflowed: HashMap<String, u64>,
    compacted_at: Millis,
}

/// The label that marks an overflow set. Clients may not send labels starting with `__`.
pub const OVERFLOW_LABEL: &str = "__overflow__";

fn floor(t: Millis, width: Millis) -> Millis {
    t - t.rem_euclid(width)
}

impl MetricStore {
    pub fn new(
        config: StoreConfig,
        metrics: impl IntoIterator<Item = (String, MetricKind)>,
    ) -> MetricStore {
        MetricStore {
            config,
            kinds: metrics.into_iter().collect(),
            series: HashMap::new(),
            remote: HashMap::new(),
            dropped: HashMap::new(),
            selected: BTreeSet::new(),
            overflowed: HashMap::new(),
            compacted_at: Millis::MIN,
        }
    }

    /// Declares the label pairs the plan's queries select on: see [`MetricStore::record`].
    pub fn selecting(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        self.selected = pairs.into_iter().collect();
        self
    }

    /// The label set a sample is stored under when its metric already holds
    /// `max_series_per_metric` sets: only the pairs the plan selects on, plus the overflow
    /// marker. A burst of junk label values then cannot crowd out a legitimate new value:
    /// `variant="canary"` arriving late lands in `{variant="canary", __overflow__="true"}`,
    /// which every `{variant="canary"}` query still reads, and totals stay whole.
    fn overflow_set(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = labels
            .iter()
            .filter(|(k, v)| self.selected.contains(&((*k).clone(), (*v).clone())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.insert(OVERFLOW_LABEL.to_string(), "true".to_string());
        out
    }

    /// Samples of `metric` folded into an overflow set since start.
    pub fn overflowed(&self, metric: &str) -> u64 {
        self.overflowed.get(metric).copied().unwrap_or(0)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Records one sample seen at server time `now`.
    pub fn record(&mut self, sample: &Sample, now: Millis) -> Result<(), RecordError> {
        let kind = *self
            .kinds
            .get(&sample.metric)
            .ok_or_else(|| RecordError::UnknownMetric(sample.metric.clone()))?;
        let wrong = |reason: &str| RecordError::WrongValue {
            metric: sample.metric.clone(),
            reason: reason.into(),
        };
        match (&sample.value, kind) {
            (SampleValue::Number(v), _) if !v.is_finite() => {
                return Err(wrong("not a finite number"));
            }
            (SampleValue::Number(v), MetricKind::Distribution | MetricKind::Counter)
                if *v < 0.0 =>
            {
                return Err(wrong("negative"));
            }
            (
                SampleValue::Number(_),
                MetricKind::Distribution | MetricKind::Counter | MetricKind::Gauge,
            )
            | (SampleValue::Flag(_), MetricKind::Ratio)
            | (SampleValue::Category(_), MetricKind::Category) => {}
            _ => return Err(wrong("value does not match the metric's kind")),
        }
        if sample.ts > now.saturating_add(self.config.max_future) {
            return Err(RecordError::Future {
                ahead_ms: sample.ts.saturating_sub(now),
            });
        }
        if sample.ts < now.saturating_sub(self.config.max_lateness) {
            *self.dropped.entry(sample.metric.clone()).or_default() += 1;
            return Err(RecordError::Dropped {
                lateness_ms: self.config.max_lateness,
            });
        }
        self.compact(now);
        let full = self.series.get(&sample.metric).is_some_and(|by_labels| {
            !by_labels.contains_key(&sample.labels)
                && by_labels
                    .keys()
                    .filter(|l| !l.contains_key(OVERFLOW_LABEL))
                    .count()
                    >= self.config.max_series_per_metric
        });
        let labels = if full {
            *self.overflowed.entry(sample.metric.clone()).or_default() += 1;
            self.overflow_set(&sample.labels)
        } else {
            sample.labels.clone()
        };
        let by_labels = self.series.entry(sample.metric.clone()).or_default();
        let data = by_labels.entry(labels).or_default();
        let bucket = data
            .fine
            .entry(floor(sample.ts, self.config.fine))
            .or_default();
        match &sample.value {
            SampleValue::Number(v) => bucket.add_number(sample.ts, *v, kind != MetricKind::Counter),
            SampleValue::Flag(b) => bucket.add_flag(*b),
            SampleValue::Category(c) => bucket.add_category(c),
        }
        Ok(())
    }

    /// Rolls fine buckets older than `fine_retention` into minutes and evicts what is older
    /// than `coarse_retention`. Cheap to call often: it works at most once per fine bucket.
    pub fn compact(&mut self, now: Millis) {
        if now < self.compacted_at.saturating_add(self.config.fine) {
            return;
        }
        self.compacted_at = now;
        let cutoff = floor(now - self.config.fine_retention, self.config.coarse);
        let evict = now - self.config.coarse_retention;
        let coarse = self.config.coarse;
        for by_labels in self.series.values_mut().chain(self.remote.values_mut()) {
            for data in by_labels.values_mut() {
                let keep = data.fine.split_off(&cutoff);
                let old = std::mem::replace(&mut data.fine, keep);
                for (start, bucket) in old {
                    data.coarse
                        .entry(floor(start, coarse))
                        .or_default()
                        .merge(&bucket);
                }
                data.coarse = data.coarse.split_off(&floor(evict, coarse));
            }
            by_labels.retain(|_, d| !d.fine.is_empty() || !d.coarse.is_empty());
        }
    }

    /// All buckets of `metric` matching `selector` whose start lies in `[from, to)`, merged.
    fn merged(&self, metric: &str, selector: &Selector, from: Millis, to: Millis) -> Bucket {
        let mut out = Bucket::default();
        let layers = [self.series.get(metric), self.remote.get(metric)];
        for (labels, data) in layers.into_iter().flatten().flatten() {
            if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                continue;
            }
            for map in [&data.fine, &data.coarse] {
                for bucket in map.range(from..to).map(|(_, b)| b) {
                    out.merge(bucket);
                }
            }
        }
        out
    }

    /// One point per `step` from `from` to `to` (inclusive of the step containing `to`);
    /// `None` where a step had no samples.
    pub fn series(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        from: Millis,
        to: Millis,
        step: Millis,
    ) -> Vec<Point> {
        let step = step.max(self.config.fine);
        let mut points = Vec::new();
        let mut t = floor(from, step);
        while t <= to {
            let v = self
                .merged(metric, selector, t, t + step)
                .aggregate(aggregate);
            points.push(Point { t, v });
            t += step;
        }
        points
    }

    /// Every bucket that starts in `[since, now]`, at its own width (10 s while fine, a minute
    /// once rolled up), as it stands now: for persistence. Buckets still open are exported as
    /// they are; importing replaces a (series, start, width), so writing the same bucket again
    /// later overwrites it, and a repeated import never double counts.
    pub fn export_buckets(&self, since: Millis, now: Millis) -> Vec<PersistedBucket> {
        let mut out = Vec::new();
        for (metric, by_labels) in &self.series {
            for (labels, data) in by_labels {
                for (map, width) in [
                    (&data.fine, self.config.fine),
                    (&data.coarse, self.config.coarse),
                ] {
                    out.extend(map.range(floor(since, width)..=now).map(|(start, bucket)| {
                        PersistedBucket {
                            metric: metric.clone(),
                            labels: labels.clone(),
                            start: *start,
                            width,
                            bucket: bucket.clone(),
                        }
                    }));
                }
            }
        }
        out.sort_by(|a, b| (a.start, &a.metric, &a.labels).cmp(&(b.start, &b.metric, &b.labels)));
        out
    }

    /// Loads persisted buckets as this store's own, each replacing the bucket held for the same
    /// series, start and width. A rolled-up minute also replaces any fine buckets inside it.
    /// Unknown metrics (a plan that changed) are skipped. Call `compact` afterwards to roll up
    /// what is old.
    pub fn import(&mut self, buckets: Vec<PersistedBucket>) {
        import_into(&mut self.series, &self.kinds, &self.config, buckets);
    }

    /// Loads buckets written elsewhere (another replica, or this server before a restart) with
    /// the same replacing rule: queries merge them with this store's own samples (DDSketch
    /// merges exactly), `export_buckets` leaves them out. Importing the same bucket again, or a
    /// newer version of it, never counts anything twice.
    pub fn import_remote(&mut self, buckets: Vec<PersistedBucket>) {
        import_into(&mut self.remote, &self.kinds, &self.config, buckets);
    }

    /// Samples of `metric` refused as too late or beyond the cardinality limit.
    pub fn dropped(&self, metric: &str) -> u64 {
        self.dropped.get(metric).copied().unwrap_or(0)
    }

    pub fn series_count(&self) -> usize {
        self.series
            .values()
            .chain(self.remote.values())
            .map(BTreeMap::len)
            .sum()
    }

    pub fn bucket_count(&self) -> usize {
        self.series
            .values()
            .chain(self.remote.values())
            .flat_map(BTreeMap::values)
            .map(|d| d.fine.len() + d.coarse.len())
            .sum()
    }

    /// Start of the oldest bucket held, own or imported: where history begins.
    pub fn earliest(&self) -> Option<Millis> {
        self.series
            .values()
            .chain(self.remote.values())
            .flat_map(BTreeMap::values)
            .flat_map(|d| [d.fine.keys().next(), d.coarse.keys().next()])
            .flatten()
            .min()
            .copied()
    }
}

fn import_into(
    map: &mut SeriesMap,
    kinds: &HashMap<String, MetricKind>,
    config: &StoreConfig,
    buckets: Vec<PersistedBucket>,
) {
    let (fine, coarse) = (config.fine, config.coarse);
    for p in buckets {
        if !kinds.contains_key(&p.metric) {
            continue;
        }
        let data = map
            .entry(p.metric)
            .or_default()
            .entry(p.labels)
            .or_default();
        if p.width >= coarse {
            let start = floor(p.start, coarse);
            let inside: Vec<Millis> = data
                .fine
                .range(start..start + coarse)
                .map(|(s, _)| *s)
                .collect();
            for s in inside {
                data.fine.remove(&s);
            }
            data.coarse.insert(start, p.bucket);
        } else {
            data.fine.insert(floor(p.start, fine), p.bucket);
        }
    }
}

impl MetricSource for MetricStore {
    fn aggregate(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        window: Millis,
        at: Millis,
    ) -> Option<f64> {
        // Fine buckets starting after at - window - fine overlap the window; a coarse start
        // in that range lies inside it (up to one fine bucket early).
        // Saturating: a plan's window can be long and `at` is whatever the caller says.
        let from = at
            .saturating_sub(window)
            .saturating_sub(self.config.fine)
            .saturating_add(1);
        self.merged(metric, selector, from, at.saturating_add(1))
            .aggregate(aggregate)
    }
}

#[cfg(test)]
mod tests;
