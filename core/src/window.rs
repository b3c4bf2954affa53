//! Metric windows: every sample lands in a 10 s bucket of its series (metric + label set);
//! buckets older than `fine_retention` roll up into 1 min buckets, minutes older than
//! `coarse_retention` into 10 min buckets kept for `broad_retention` (a week and a day, or the
//! longest hypercare); a window query merges the buckets it covers. Memory is bounded by
//! retention / bucket width per series and by `max_series_per_metric`, never by the number of
//! samples: a series holds at most 360 + 1,440 + 1,008 buckets over 8 days (60,480 at 10 s).
//!
//! Bounds (defaults): quantiles within 1% relative error (`bucket::RELATIVE_ERROR`); samples up
//! to 5 min late land in their own bucket, older ones are counted as dropped; timestamps more
//! than 10 s ahead of `now` are refused.
//!
//! Window rule: a query over `window` at `at` merges every fine bucket that overlaps
//! `(at - window, at]` (so the bucket being filled now always counts, and a window is never
//! empty while samples exist inside it) and every rolled-up bucket (a minute, ten minutes)
//! whose middle lies inside it. Tiers never cover the same period (a minute moves to coarse
//! whole, ten minutes to broad whole), so nothing is counted twice. A window of whole rolled-up
//! buckets holds as many of them wherever it falls; `plan check` asks a read that reaches past
//! 25 h (`offset 7d`) for whole 10 min.

mod bucket;
mod rolled;
mod sketch;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use bucket::{Bucket, RELATIVE_ERROR};
pub use sketch::Sketch;

use crate::query::{Aggregate, MetricKind, MetricSource, Selector};
use crate::series::Point;
use crate::time::{DAY, HOUR, MINUTE, Millis, SECOND};

/// How long minutes are kept before they roll up into 10 min buckets: a day, so `offset 24h`
/// compares with the same time yesterday at minute resolution, plus an hour for its window.
pub const MINUTES_KEPT: Millis = DAY + HOUR;

/// How far back the store answers at least: a week and a day, so `offset 7d` compares with the
/// same time last week and a 7d chart is whole.
pub const LOOKBACK: Millis = 8 * DAY;

/// The longest any store keeps: a hypercare is at most 30 days (`plan check`), plus a day.
pub const MAX_LOOKBACK: Millis = 31 * DAY;

/// How far back a store keeps data for a plan whose hypercare lasts `hypercare`: the whole
/// hypercare and the day before it, and never less than [`LOOKBACK`].
pub fn lookback_for(hypercare: Option<Millis>) -> Millis {
    let broad = StoreConfig::default().broad;
    let want = hypercare.unwrap_or(0).saturating_add(DAY);
    let keep = want.clamp(LOOKBACK, MAX_LOOKBACK);
    // Whole 10 min buckets.
    keep.div_euclid(broad) * broad
        + if keep.rem_euclid(broad) == 0 {
            0
        } else {
            broad
        }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub fine: Millis,
    pub coarse: Millis,
    #[serde(default = "default_broad")]
    pub broad: Millis,
    pub fine_retention: Millis,
    pub coarse_retention: Millis,
    /// How far back anything is kept (at least `coarse_retention`).
    #[serde(default = "default_broad_retention")]
    pub broad_retention: Millis,
    pub max_lateness: Millis,
    pub max_future: Millis,
    pub max_series_per_metric: usize,
    /// Keep the sketches of rolled-up (closed) buckets packed (`Sketch::pack`): a quarter of
    /// the memory or less. Off only to measure what packing saves.
    #[serde(default = "packing")]
    pub pack_closed: bool,
}

fn packing() -> bool {
    true
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            fine: 10 * SECOND,
            coarse: MINUTE,
            broad: default_broad(),
            fine_retention: HOUR,
            coarse_retention: MINUTES_KEPT,
            broad_retention: default_broad_retention(),
            max_lateness: 5 * MINUTE,
            max_future: 10 * SECOND,
            max_series_per_metric: 64,
            pack_closed: true,
        }
    }
}

fn default_broad() -> Millis {
    10 * MINUTE
}

fn default_broad_retention() -> Millis {
    LOOKBACK
}

impl StoreConfig {
    /// The defaults, kept for `lookback` (see [`lookback_for`]).
    pub fn keeping(lookback: Millis) -> StoreConfig {
        StoreConfig {
            broad_retention: lookback,
            ..StoreConfig::default()
        }
    }

    /// How far back this store answers: what is older is evicted.
    pub fn lookback(&self) -> Millis {
        self.broad_retention.max(self.coarse_retention)
    }

    /// The width of the buckets held `age` back: what a chart reaching that far must step by
    /// to put the same number of buckets in every point.
    pub fn width_at(&self, age: Millis) -> Millis {
        if age <= self.fine_retention {
            self.fine
        } else if age <= self.coarse_retention {
            self.coarse
        } else {
            self.broad
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

/// A sample's value, borrowed: recording it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation<'a> {
    Number(f64),
    Flag(bool),
    Category(&'a str),
}

impl SampleValue {
    pub fn observation(&self) -> Observation<'_> {
        match self {
            SampleValue::Number(v) => Observation::Number(*v),
            SampleValue::Flag(b) => Observation::Flag(*b),
            SampleValue::Category(c) => Observation::Category(c),
        }
    }
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
    broad: BTreeMap<Millis, Bucket>,
}

impl SeriesData {
    fn tiers(&self) -> [&BTreeMap<Millis, Bucket>; 3] {
        [&self.fine, &self.coarse, &self.broad]
    }

    fn is_empty(&self) -> bool {
        self.tiers().iter().all(|t| t.is_empty())
    }
}

/// Moves every bucket of `from` starting before `cutoff` into `to`, merged into buckets of
/// `width`.
fn roll_up(
    from: &mut BTreeMap<Millis, Bucket>,
    to: &mut BTreeMap<Millis, Bucket>,
    cutoff: Millis,
    width: Millis,
    pack: bool,
) -> Option<Millis> {
    let keep = from.split_off(&cutoff);
    let old = std::mem::replace(from, keep);
    let mut touched = BTreeSet::new();
    for (start, bucket) in old {
        let start = floor(start, width);
        to.entry(start).or_default().merge(&bucket);
        touched.insert(start);
    }
    // Whole: every bucket it was made of has moved (cutoffs lie on `width`'s grid).
    let highest = touched.last().copied();
    for start in touched.into_iter().filter(|_| pack) {
        if let Some(bucket) = to.get_mut(&start) {
            bucket.pack();
        }
    }
    highest
}

/// A label set.
type Labels = BTreeMap<String, String>;

type SeriesMap = HashMap<String, BTreeMap<Labels, SeriesData>>;

/// Buckets imported from one other replica, and how fresh they are.
#[derive(Debug, Clone, Default)]
struct Remote {
    series: SeriesMap,
    /// When that replica last wrote any bucket imported here.
    as_of: Millis,
}

/// Another replica's buckets as fetched from storage: whose, when it last wrote any of them.
#[derive(Debug, Clone)]
pub struct ReplicaBuckets {
    pub replica: String,
    pub as_of: Millis,
    pub buckets: Vec<PersistedBucket>,
}

#[derive(Debug, Clone)]
pub struct MetricStore {
    config: StoreConfig,
    kinds: HashMap<String, MetricKind>,
    /// metric -> label set -> buckets, from samples recorded here.
    series: SeriesMap,
    /// The same, from buckets other replicas wrote (or this server before a restart), kept
    /// apart per replica (two replicas write a bucket of the same start; one must not replace
    /// the other): merged into every query, never exported again, so nothing is written or
    /// counted twice.
    remote: BTreeMap<String, Remote>,
    dropped: HashMap<String, u64>,
    /// Label pairs the plan's queries select on (`variant="canary"`): kept when a sample is
    /// folded into an overflow set, so every query the plan makes stays exact.
    selected: BTreeSet<(String, String)>,
    /// Samples folded into an overflow set because their metric had no room for a new set.
    overflowed: HashMap<String, u64>,
    compacted_at: Millis,
    /// Counts every change to the rolled-up tiers (minutes, ten minutes) of any layer: what
    /// `rolled` merged is good while it stands.
    rolled_generation: u64,
    /// The latest start held in the minute and ten-minute tiers of any layer (or earlier):
    /// reads past it take nothing more from those tiers, so a read that grows every second
    /// (a stage's comparison) is the same read of them until the next roll-up.
    rolled_high: [Millis; 2],
    rolled: rolled::RolledSketches,
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
            remote: BTreeMap::new(),
            dropped: HashMap::new(),
            selected: BTreeSet::new(),
            overflowed: HashMap::new(),
            compacted_at: Millis::MIN,
            rolled_generation: 0,
            rolled_high: [Millis::MIN; 2],
            rolled: rolled::RolledSketches::default(),
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
        let mut recorder = self.recorder(now);
        let slot = recorder.series(&sample.metric, &sample.labels)?;
        recorder.add(slot, sample.ts, sample.value.observation())
    }

    /// Records many samples seen at server time `now`, each series looked up once: see
    /// [`Recorder`]. What it holds is written when it is dropped.
    pub fn recorder<'a>(&mut self, now: Millis) -> Recorder<'_, 'a> {
        Recorder {
            store: self,
            now,
            compacted: false,
            slots: Vec::new(),
            groups: Vec::new(),
            targets: HashMap::new(),
            claimed: HashMap::new(),
        }
    }

    /// Rolls fine buckets older than `fine_retention` into minutes, minutes older than
    /// `coarse_retention` into 10 min buckets, and evicts what is older than the lookback.
    /// Cheap to call often: it works at most once per fine bucket.
    pub fn compact(&mut self, now: Millis) {
        if now < self.compacted_at.saturating_add(self.config.fine) {
            return;
        }
        self.compacted_at = now;
        let StoreConfig {
            coarse,
            broad,
            fine_retention,
            coarse_retention,
            pack_closed,
            ..
        } = self.config;
        // Each cutoff on the next tier's grid, so a minute (ten minutes) moves whole.
        let to_coarse = floor(now - fine_retention, coarse);
        let to_broad = floor(now - coarse_retention.max(fine_retention), broad);
        let evict = floor(now - self.config.lookback(), broad);
        let layers = std::iter::once(&mut self.series)
            .chain(self.remote.values_mut().map(|r| &mut r.series));
        let (mut changed, mut high) = (false, self.rolled_high);
        for by_labels in layers.flat_map(|layer| layer.values_mut()) {
            for data in by_labels.values_mut() {
                let rolled = [
                    roll_up(
                        &mut data.fine,
                        &mut data.coarse,
                        to_coarse,
                        coarse,
                        pack_closed,
                    ),
                    roll_up(
                        &mut data.coarse,
                        &mut data.broad,
                        to_broad,
                        broad,
                        pack_closed,
                    ),
                ];
                for (tier, start) in rolled.into_iter().enumerate() {
                    if let Some(start) = start {
                        changed = true;
                        high[tier] = high[tier].max(start);
                    }
                }
                let held = data.coarse.len() + data.broad.len();
                data.broad = data.broad.split_off(&evict);
                // Whatever a short lookback leaves in the finer tiers.
                data.coarse = data.coarse.split_off(&evict);
                data.fine = data.fine.split_off(&evict);
                changed |= data.coarse.len() + data.broad.len() != held;
            }
            by_labels.retain(|_, d| !d.is_empty());
        }
        // A replica whose every bucket has aged out (it stopped, or restarted as another).
        let replicas = self.remote.len();
        self.remote
            .retain(|_, r| r.series.values().any(|by_labels| !by_labels.is_empty()));
        changed |= self.remote.len() != replicas;
        self.rolled_high = high;
        if changed {
            self.rolled_generation += 1;
        }
    }

    /// Notes what an import put into the rolled-up tiers.
    fn rolled_in(&mut self, high: [Option<Millis>; 2]) {
        for (tier, start) in high.into_iter().enumerate() {
            if let Some(start) = start {
                self.rolled_high[tier] = self.rolled_high[tier].max(start);
                self.rolled_generation += 1;
            }
        }
    }

    /// All buckets of `metric` matching `selector` within `reach`, merged.
    fn merged(&self, metric: &str, selector: &Selector, reach: Reach) -> Bucket {
        let mut out = Bucket::default();
        for (_, bucket) in self.matching(metric, selector, reach) {
            out.merge(bucket);
        }
        out
    }

    /// Every bucket of `metric`'s series matching `selector` within `reach`, every tier,
    /// series by series (not in time order across series).
    fn matching<'a>(
        &'a self,
        metric: &'a str,
        selector: &'a Selector,
        reach: Reach,
    ) -> impl Iterator<Item = (Millis, &'a Bucket)> + 'a {
        self.matching_tiers(metric, selector, reach)
            .map(|(_, start, b)| (start, b))
    }

    /// As `matching`, with each bucket's tier (0 fine, 1 minutes, 2 ten minutes).
    fn matching_tiers<'a>(
        &'a self,
        metric: &'a str,
        selector: &'a Selector,
        reach: Reach,
    ) -> impl Iterator<Item = (usize, Millis, &'a Bucket)> + 'a {
        self.layers()
            .filter_map(move |layer| layer.get(metric))
            .flatten()
            .filter(move |(labels, _)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .flat_map(move |(_, data)| {
                data.tiers()
                    .into_iter()
                    .enumerate()
                    .flat_map(move |(tier, map)| {
                        map.range(reach.range(tier))
                            .map(move |(start, b)| (tier, *start, b))
                    })
            })
    }

    /// The merged sketch of the rolled-up buckets `matching` takes: merged once and kept while
    /// the rolled-up tiers are unchanged (see `rolled`).
    fn rolled_sketch(&self, metric: &str, selector: &Selector, reach: Reach) -> Option<Sketch> {
        // Past the latest start held, a tier has nothing: cut there, so a read that grows
        // every second stays the same read until the next roll-up.
        let cut = |tier: usize| {
            let (from, to) = reach.0[tier];
            let to = to.min(self.rolled_high[tier - 1].saturating_add(1));
            (from, to.max(from))
        };
        let read = (
            metric.to_string(),
            selector
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            [cut(1), cut(2)],
        );
        // The rolled-up tiers only: the fine tier is read empty.
        let rolled = Reach([(0, 0), reach.0[1], reach.0[2]]);
        self.rolled.get(self.rolled_generation, read, || {
            let mut merged: Option<Sketch> = None;
            for (_, b) in self.matching(metric, selector, rolled) {
                if let Some(theirs) = &b.sketch {
                    match &mut merged {
                        Some(mine) => mine.merge(theirs),
                        None => merged = Some(theirs.clone()),
                    }
                }
            }
            merged
        })
    }

    /// Everything `matching` takes within `reach`, as one tally: counts and sketches merged,
    /// and the spread of a mean folded from each bucket's moments in time order. The
    /// rolled-up buckets' sketches come merged from `rolled_sketch`.
    fn tally_in(
        &self,
        metric: &str,
        selector: &Selector,
        reach: Reach,
    ) -> crate::sequential::Tally {
        let rolled = self.rolled_sketch(metric, selector, reach);
        let mut total = Bucket::default();
        let mut blocks: Vec<(Millis, crate::sequential::Moments)> = Vec::new();
        for (tier, start, b) in self.matching_tiers(metric, selector, reach) {
            if tier == 0 {
                total.merge(b);
            } else {
                total.merge_except_sketch(b);
            }
            blocks.push((start, moments_of(b)));
        }
        if let Some(sketch) = &rolled {
            total.merge_sketch(sketch);
        }
        // In time order, label sets of the same bucket as one block.
        blocks.sort_unstable_by_key(|(start, _)| *start);
        let mut spread = crate::sequential::Spread::default();
        let mut before = crate::sequential::Moments::default();
        for same in blocks.chunk_by(|a, b| a.0 == b.0) {
            let mut block = crate::sequential::Moments::default();
            for (_, m) in same {
                block.merge(m);
            }
            spread.then(&before, &block);
            before.merge(&block);
        }
        // The merged sketch moves into the tally rather than being copied.
        let sketch = total.sketch.take().map(Sketch::into_dense);
        let mut tally = tally_of(&total);
        tally.sketch = sketch;
        tally.spread = spread;
        tally
    }

    /// Everything of `metric`'s series matching `selector` in buckets starting in `[from, to)`,
    /// as one tally (see `tally_in`): what a comparison's chart holds before its first point.
    pub fn tally_starts(
        &self,
        metric: &str,
        selector: &Selector,
        from: Millis,
        to: Millis,
    ) -> crate::sequential::Tally {
        self.tally_in(metric, selector, Reach::starts(from, to))
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
                .merged(metric, selector, Reach::starts(t, t + step))
                .aggregate(aggregate);
            points.push(Point { t, v });
            t += step;
        }
        points
    }

    /// As [`MetricStore::series`], but each point is the read over `window` ending where its
    /// step ends (the newest at `to`): what a gate with that window judged at that moment.
    ///
    /// Where the window is whole steps, each step's buckets are merged once and the windows
    /// slide over them (a few merges a point, not one per bucket in the window: a live frame
    /// of a 15 min gate would otherwise merge 8,000 buckets a second, under the metrics
    /// lock). On 10 s steps that is exactly the gate's read; on wider steps a rolled-up bucket
    /// at the window's far edge may count or not. Otherwise each point reads its window.
    pub fn windowed(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        window: Millis,
        (from, to, step): (Millis, Millis, Millis),
    ) -> Vec<Point> {
        let step = step.max(self.config.fine);
        let first = floor(from, step);
        if window >= step && window % step == 0 {
            // Steps a window at a step's end covers: on 10 s buckets every one overlapping
            // it (one more than the window holds whole), else those starting inside it.
            let k = usize::try_from(window / step).unwrap_or(usize::MAX)
                + usize::from(step == self.config.fine);
            let lead = (k - 1) as Millis * step;
            let mut starts = Vec::new();
            let mut t = first.saturating_sub(lead);
            while t <= to {
                starts.push(t);
                t += step;
            }
            let blocks: Vec<Bucket> = starts
                .iter()
                .map(|&t| self.merged(metric, selector, Reach::starts(t, t + step)))
                .collect();
            return sliding(&blocks, k)
                .into_iter()
                .zip(&starts)
                .skip(k - 1)
                .map(|(b, &t)| Point {
                    t,
                    v: b.aggregate(aggregate),
                })
                .collect();
        }
        let mut points = Vec::new();
        let mut t = first;
        while t <= to {
            let at = t.saturating_add(step - 1).min(to);
            let v = MetricSource::aggregate(self, metric, selector, aggregate, window, at);
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
                for (map, width) in data.tiers().into_iter().zip([
                    self.config.fine,
                    self.config.coarse,
                    self.config.broad,
                ]) {
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
        let high = import_into(&mut self.series, &self.kinds, &self.config, buckets);
        self.rolled_in(high);
    }

    /// Loads buckets written elsewhere (another replica, or this server before a restart) with
    /// the same replacing rule: queries merge them with this store's own samples (DDSketch
    /// merges exactly), `export_buckets` leaves them out. Importing the same bucket again, or a
    /// newer version of it, never counts anything twice.
    pub fn import_remote(&mut self, from: ReplicaBuckets) {
        let remote = self.remote.entry(from.replica).or_default();
        remote.as_of = remote.as_of.max(from.as_of);
        let high = import_into(&mut remote.series, &self.kinds, &self.config, from.buckets);
        self.rolled_in(high);
    }

    /// Each replica whose buckets were imported, with when it last wrote one: how fresh the
    /// other replicas' share of every window is.
    pub fn remote_as_of(&self) -> Vec<(String, Millis)> {
        self.remote
            .iter()
            .map(|(replica, r)| (replica.clone(), r.as_of))
            .collect()
    }

    /// This store's own series, then each replica's imported ones.
    fn layers(&self) -> impl Iterator<Item = &SeriesMap> {
        std::iter::once(&self.series).chain(self.remote.values().map(|r| &r.series))
    }

    /// Samples of `metric` refused as too late or beyond the cardinality limit.
    pub fn dropped(&self, metric: &str) -> u64 {
        self.dropped.get(metric).copied().unwrap_or(0)
    }

    pub fn series_count(&self) -> usize {
        self.layers()
            .flat_map(HashMap::values)
            .map(BTreeMap::len)
            .sum()
    }

    pub fn bucket_count(&self) -> usize {
        self.layers()
            .flat_map(HashMap::values)
            .flat_map(BTreeMap::values)
            .map(|d| d.tiers().iter().map(|t| t.len()).sum::<usize>())
            .sum()
    }

    /// Start of the oldest bucket held, own or imported: where history begins.
    pub fn earliest(&self) -> Option<Millis> {
        self.layers()
            .flat_map(HashMap::values)
            .flat_map(BTreeMap::values)
            .flat_map(|d| d.tiers().map(|t| t.keys().next()))
            .flatten()
            .min()
            .copied()
    }
}

/// A (metric, label set) of a [`Recorder`], looked up once for all its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesSlot(usize);

#[derive(Debug)]
struct Slot<'a> {
    metric: &'a str,
    kind: MetricKind,
    labels: &'a BTreeMap<String, String>,
    /// The group its samples go to, once the first one is admitted; whether that group is an
    /// overflow set standing in for `labels`.
    target: Option<(usize, bool)>,
}

/// The samples headed for one stored series, in arrival order.
#[derive(Debug)]
struct Group<'a> {
    metric: &'a str,
    kind: MetricKind,
    labels: Cow<'a, BTreeMap<String, String>>,
    /// Each with how many times it was seen (a histogram bucket's count; mostly 1).
    samples: Vec<(Millis, Observation<'a>, u64)>,
}

/// Records a batch of samples into a [`MetricStore`] at one server time, exactly as
/// [`MetricStore::record`] would one by one, but without a lookup or an allocation per sample:
/// each (metric, label set) is resolved once ([`Recorder::series`]), admitted samples are
/// grouped by the series they land in (in arrival order, so every bucket sees the same
/// samples in the same order), and written when the recorder is dropped.
///
/// A series is claimed (or the overflow set chosen) when its first sample is admitted, as one
/// by one recording would; a set claimed here counts against `max_series_per_metric` at once.
#[derive(Debug)]
pub struct Recorder<'s, 'a> {
    store: &'s mut MetricStore,
    now: Millis,
    compacted: bool,
    slots: Vec<Slot<'a>>,
    groups: Vec<Group<'a>>,
    /// metric -> stored label set -> group.
    targets: HashMap<&'a str, HashMap<Cow<'a, Labels>, usize>>,
    /// Label sets given a series of their own here (not yet in the store), per metric.
    claimed: HashMap<&'a str, usize>,
}

impl<'a> Recorder<'_, 'a> {
    /// The slot for samples of `metric` with `labels`; an unknown metric is refused.
    pub fn series(
        &mut self,
        metric: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> Result<SeriesSlot, RecordError> {
        let kind = *self
            .store
            .kinds
            .get(metric)
            .ok_or_else(|| RecordError::UnknownMetric(metric.to_string()))?;
        self.slots.push(Slot {
            metric,
            kind,
            labels,
            target: None,
        });
        Ok(SeriesSlot(self.slots.len() - 1))
    }

    /// Checks one sample of `slot` and, if it is admitted, queues it. A sample too late is
    /// counted as dropped, as [`MetricStore::record`] counts it.
    pub fn add(
        &mut self,
        slot: SeriesSlot,
        ts: Millis,
        value: Observation<'a>,
    ) -> Result<(), RecordError> {
        self.add_many(slot, ts, value, 1)
    }

    /// As [`Recorder::add`] for `count` samples of the same value at once (a histogram
    /// bucket, a counted category): recorded as that many would be, at the cost of one.
    pub fn add_many(
        &mut self,
        slot: SeriesSlot,
        ts: Millis,
        value: Observation<'a>,
        count: u64,
    ) -> Result<(), RecordError> {
        let s = &self.slots[slot.0];
        let (metric, kind) = (s.metric, s.kind);
        let wrong = |reason: &str| RecordError::WrongValue {
            metric: metric.to_string(),
            reason: reason.into(),
        };
        match (value, kind) {
            (Observation::Number(v), _) if !v.is_finite() => {
                return Err(wrong("not a finite number"));
            }
            (Observation::Number(v), MetricKind::Distribution | MetricKind::Counter) if v < 0.0 => {
                return Err(wrong("negative"));
            }
            (
                Observation::Number(_),
                MetricKind::Distribution | MetricKind::Counter | MetricKind::Gauge,
            )
            | (Observation::Flag(_), MetricKind::Ratio)
            | (Observation::Category(_), MetricKind::Category) => {}
            _ => return Err(wrong("value does not match the metric's kind")),
        }
        let config = &self.store.config;
        if ts > self.now.saturating_add(config.max_future) {
            return Err(RecordError::Future {
                ahead_ms: ts.saturating_sub(self.now),
            });
        }
        if ts < self.now.saturating_sub(config.max_lateness) {
            let lateness_ms = config.max_lateness;
            bump(&mut self.store.dropped, metric, count);
            return Err(RecordError::Dropped { lateness_ms });
        }
        let (group, overflow) = match s.target {
            Some(target) => target,
            None => self.resolve(slot),
        };
        if overflow {
            bump(&mut self.store.overflowed, metric, count);
        }
        self.groups[group].samples.push((ts, value, count));
        Ok(())
    }

    /// Where a slot's samples land, decided at its first admitted sample as
    /// [`MetricStore::record`] decides: its own series if it has one or there is room for
    /// one, else its overflow set.
    fn resolve(&mut self, slot: SeriesSlot) -> (usize, bool) {
        if !self.compacted {
            self.compacted = true;
            self.store.compact(self.now);
        }
        let Slot {
            metric,
            kind,
            labels,
            ..
        } = self.slots[slot.0];
        let mut target = (Cow::Borrowed(labels), false);
        if self
            .targets
            .get(metric)
            .is_none_or(|t| !t.contains_key(labels))
        {
            let stored = self.store.series.get(metric);
            if !stored.is_some_and(|by_labels| by_labels.contains_key(labels)) {
                let held = stored.map_or(0, |by_labels| {
                    by_labels
                        .keys()
                        .filter(|l| !l.contains_key(OVERFLOW_LABEL))
                        .count()
                });
                let claimed = self.claimed.get(metric).copied().unwrap_or(0);
                if held + claimed >= self.store.config.max_series_per_metric {
                    target = (Cow::Owned(self.store.overflow_set(labels)), true);
                } else if !labels.contains_key(OVERFLOW_LABEL) {
                    *self.claimed.entry(metric).or_default() += 1;
                }
            }
        }
        let (stored, overflow) = target;
        let groups = &mut self.groups;
        let group = *self
            .targets
            .entry(metric)
            .or_default()
            .entry(stored)
            .or_insert_with_key(|labels| {
                groups.push(Group {
                    metric,
                    kind,
                    labels: labels.clone(),
                    samples: Vec::new(),
                });
                groups.len() - 1
            });
        // A set that is its own overflow set exists from its first sample on: later ones
        // land in it as in any existing set, without counting as overflowed.
        let folded = overflow && *self.groups[group].labels != *labels;
        self.slots[slot.0].target = Some((group, folded));
        (group, overflow)
    }
}

impl Drop for Recorder<'_, '_> {
    /// Writes what was admitted, group by group.
    fn drop(&mut self) {
        let fine = self.store.config.fine;
        for group in self.groups.drain(..) {
            let by_labels = match self.store.series.get_mut(group.metric) {
                Some(by_labels) => by_labels,
                None => self
                    .store
                    .series
                    .entry(group.metric.to_string())
                    .or_default(),
            };
            let data = match by_labels.get_mut(group.labels.as_ref()) {
                Some(data) => data,
                None => by_labels.entry(group.labels.into_owned()).or_default(),
            };
            let sketched = group.kind != MetricKind::Counter;
            let mut open: Option<(Millis, &mut Bucket)> = None;
            for (ts, value, n) in group.samples {
                let start = floor(ts, fine);
                if open.as_ref().is_none_or(|(s, _)| *s != start) {
                    open = Some((start, data.fine.entry(start).or_default()));
                }
                let Some((_, bucket)) = open.as_mut() else {
                    continue;
                };
                match value {
                    Observation::Number(v) => bucket.add_numbers(ts, v, n, sketched),
                    Observation::Flag(b) => bucket.add_flags(b, n),
                    Observation::Category(c) => bucket.add_categories(c, n),
                }
            }
        }
    }
}

/// For each `i`, the merge of `blocks[i + 1 - k ..= i]` (fewer at the start): the blocks cut
/// into runs of `k`, each run's prefix and suffix merges kept, so a window is one suffix and
/// one prefix, about three merges a window whatever `k` is.
fn sliding(blocks: &[Bucket], k: usize) -> Vec<Bucket> {
    let n = blocks.len();
    let k = k.max(1);
    let mut prefix: Vec<Bucket> = Vec::with_capacity(n);
    for (i, b) in blocks.iter().enumerate() {
        let mut merged = if i % k == 0 {
            Bucket::default()
        } else {
            prefix[i - 1].clone()
        };
        merged.merge(b);
        prefix.push(merged);
    }
    let mut suffix: Vec<Bucket> = vec![Bucket::default(); n];
    for i in (0..n).rev() {
        let mut merged = blocks[i].clone();
        if i % k != k - 1 && i + 1 < n {
            merged.merge(&suffix[i + 1]);
        }
        suffix[i] = merged;
    }
    (0..n)
        .map(|i| match (i + 1).checked_sub(k) {
            Some(lo) if lo % k != 0 => {
                let mut w = suffix[lo].clone();
                w.merge(&prefix[i]);
                w
            }
            _ => prefix[i].clone(),
        })
        .collect()
}

/// Adds `by` to `metric`'s count, allocating its name only the first time.
fn bump(counts: &mut HashMap<String, u64>, metric: &str, by: u64) {
    match counts.get_mut(metric) {
        Some(n) => *n = n.saturating_add(by),
        None => {
            counts.insert(metric.to_string(), by);
        }
    }
}

fn import_into(
    map: &mut SeriesMap,
    kinds: &HashMap<String, MetricKind>,
    config: &StoreConfig,
    buckets: Vec<PersistedBucket>,
) -> [Option<Millis>; 2] {
    // The latest start put into the minute and ten-minute tiers.
    let mut high: [Option<Millis>; 2] = [None; 2];
    let (fine, coarse, broad) = (config.fine, config.coarse, config.broad);
    for p in buckets {
        if !kinds.contains_key(&p.metric) {
            continue;
        }
        let data = map
            .entry(p.metric)
            .or_default()
            .entry(p.labels)
            .or_default();
        // A bucket replaces the finer ones inside it (they are what it was rolled up from),
        // and a finer one inside a wider one already held is already counted there.
        let (width, tier) = if p.width >= broad {
            (broad, 2)
        } else if p.width >= coarse {
            (coarse, 1)
        } else {
            (fine, 0)
        };
        let start = floor(p.start, width);
        let covered = (data.broad.contains_key(&floor(start, broad)) && tier < 2)
            || (data.coarse.contains_key(&floor(start, coarse)) && tier < 1);
        if covered {
            continue;
        }
        for finer in [&mut data.fine, &mut data.coarse].into_iter().take(tier) {
            let inside: Vec<Millis> = finer.range(start..start + width).map(|(s, _)| *s).collect();
            for s in inside {
                finer.remove(&s);
            }
        }
        let mut bucket = p.bucket;
        // A rolled-up bucket is closed: kept packed like the ones rolled up here.
        if tier > 0 && config.pack_closed {
            bucket.pack();
        }
        // A ten-minute bucket also takes the minutes inside it out of their tier: both change.
        for t in 1..=tier {
            let h = &mut high[t - 1];
            *h = Some(h.map_or(start, |h| h.max(start)));
        }
        [&mut data.fine, &mut data.coarse, &mut data.broad][tier].insert(start, bucket);
    }
    high
}

impl MetricStore {
    /// What a query over `window` at `at` reads: every fine bucket that overlaps
    /// `(at - window, at]` (its start after `at - window - fine`), and every rolled-up bucket
    /// whose middle lies inside it: a window of whole minutes (or ten) then always holds as
    /// many of them, the ones it mostly covers, wherever `at` falls (a start inside it would
    /// take the bucket that has only begun; an overlap, one too many). Saturating: a plan's
    /// window can be long and `at` is whatever the caller says.
    fn window_reach(&self, window: Millis, at: Millis) -> Reach {
        let inside = at.saturating_sub(window).saturating_add(1);
        let end = at.saturating_add(1);
        let middle = |width: Millis| {
            (
                inside.saturating_sub(width / 2),
                end.saturating_sub(width / 2),
            )
        };
        Reach([
            (inside.saturating_sub(self.config.fine), end),
            middle(self.config.coarse),
            middle(self.config.broad),
        ])
    }

    /// The events of `metric`'s series matching `selector` bucket by bucket, for buckets
    /// starting in `[from, to)`, in time order: what a chart of a comparison accumulates step
    /// by step without merging the whole stage again at every step.
    pub fn tallies(
        &self,
        metric: &str,
        selector: &Selector,
        from: Millis,
        to: Millis,
    ) -> Vec<(Millis, crate::sequential::Tally)> {
        let mut out: BTreeMap<Millis, crate::sequential::Tally> = BTreeMap::new();
        for (start, b) in self.matching(metric, selector, Reach::starts(from, to)) {
            out.entry(start).or_default().merge(&tally_of(b));
        }
        out.into_iter().collect()
    }
}

fn tally_of(b: &Bucket) -> crate::sequential::Tally {
    crate::sequential::Tally::block(
        b.count,
        b.trues,
        b.sum,
        b.squares,
        b.sketch.clone().map(Sketch::into_dense),
        RELATIVE_ERROR,
    )
}

fn moments_of(b: &Bucket) -> crate::sequential::Moments {
    crate::sequential::Moments {
        count: b.count,
        sum: b.sum,
        squares: b.squares,
    }
}

impl MetricSource for MetricStore {
    fn tally(
        &self,
        metric: &str,
        selector: &Selector,
        window: Millis,
        at: Millis,
    ) -> Option<crate::sequential::Tally> {
        self.kinds.get(metric)?;
        Some(self.tally_in(metric, selector, self.window_reach(window, at)))
    }

    fn label_values(
        &self,
        metric: &str,
        selector: &Selector,
        label: &str,
        window: Millis,
        at: Millis,
    ) -> Vec<String> {
        let reach = self.window_reach(window, at);
        let mut out = std::collections::BTreeSet::new();
        for series in self.layers().filter_map(|layer| layer.get(metric)) {
            for (labels, data) in series {
                if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    continue;
                }
                let Some(value) = labels.get(label) else {
                    continue;
                };
                let seen = data
                    .tiers()
                    .iter()
                    .enumerate()
                    .any(|(tier, m)| m.range(reach.range(tier)).any(|(_, b)| b.count > 0));
                if seen {
                    out.insert(value.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    fn aggregate(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        window: Millis,
        at: Millis,
    ) -> Option<f64> {
        let reach = self.window_reach(window, at);
        if *aggregate == Aggregate::PerSecond {
            // Events (a counter: its sum) over the time the covered buckets span, the newest
            // only up to `at`: between the window and one bucket more.
            let kind = self.kinds.get(metric)?;
            let total = if *kind == MetricKind::Counter {
                Aggregate::Sum
            } else {
                Aggregate::Count
            };
            // Exactly the buckets that overlap (at - window, at].
            let first = floor(
                at.saturating_sub(window).saturating_add(1),
                self.config.fine,
            );
            let covered = at.saturating_add(1) - first;
            let value = self
                .merged(
                    metric,
                    selector,
                    Reach([(first, reach.0[0].1), reach.0[1], reach.0[2]]),
                )
                .aggregate(&total)?;
            return Some(value * SECOND as f64 / covered.max(1) as f64);
        }
        self.merged(metric, selector, reach).aggregate(aggregate)
    }
}

/// Which bucket starts a read takes, per tier (fine, minutes, ten minutes): `[from, to)`.
#[derive(Debug, Clone, Copy)]
struct Reach([(Millis, Millis); 3]);

impl Reach {
    /// Buckets of every tier that start in `[from, to)`: a chart step.
    fn starts(from: Millis, to: Millis) -> Reach {
        Reach([(from, to); 3])
    }

    /// The starts tier `tier` (0 fine, 1 minutes, 2 ten minutes) reads.
    fn range(&self, tier: usize) -> std::ops::Range<Millis> {
        let (from, to) = self.0[tier.min(2)];
        from..to.max(from)
    }
}

#[cfg(test)]
mod tests;
