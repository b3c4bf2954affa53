//! Simulated traffic for the demo: events for every metric a plan declares, aimed to keep the
//! plan's gates comfortably green (latencies log-normal under their quantile limits, ratios
//! inside their bounds, categories within their shares), with the label values the gates
//! select on (canary/baseline/shadow). Fed through the same validation as pushed events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cutover_core::expr::{self, ArithOp, CmpOp, Expr, Kind};
use cutover_core::plan::{Metric, Plan};
use cutover_core::query::{Aggregate, MetricKind};
use cutover_core::unit::Unit;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use serde_json::{Map, Value, json};

use cutover_core::time::{DAY, Millis};
use cutover_core::window::{MetricStore, PersistedBucket, StoreConfig};

use crate::sources::ingest;

/// Spread of simulated latencies (log-normal sigma).
const SIGMA: f64 = 0.45;
/// Spread of other distributions (scores, coverage): they move little between events.
const SCORE_SIGMA: f64 = 0.05;

/// The fewest events a second the simulator is run at (its tests): a counted rate aims to
/// meet its gate at this.
const SLOWEST_EVENTS_PER_SECOND: f64 = 20.0;

/// What to aim each metric at, derived from the plan's gates.
#[derive(Debug, Default)]
pub struct Targets {
    median: BTreeMap<String, f64>,
    /// Ratio metrics: the (lower, upper) bounds their gates set.
    bounds: BTreeMap<String, (Option<f64>, Option<f64>)>,
    shares: BTreeMap<String, BTreeMap<String, f64>>,
    per_event: BTreeMap<String, f64>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// What the simulated traffic does: healthy, or one of the incidents the runbooks' rollback
/// triggers and alerts describe. An incident hits every event, as an outage of a shared
/// dependency would; a canary-only regression is `Mix::canary_slowdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    Healthy,
    LatencySpike,
    ErrorSpike,
    FallbackStorm,
    CacheCold,
    NoData,
}

/// How much slower a spike makes latencies.
const SPIKE: f64 = 4.0;

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::LatencySpike => "latency-spike",
            Scenario::ErrorSpike => "error-spike",
            Scenario::FallbackStorm => "fallback-storm",
            Scenario::CacheCold => "cache-cold",
            Scenario::NoData => "no-data",
        }
    }

    /// What it does and what it trips, and when: printed by `simulate` and `demo`.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::Healthy => {
                "every gate green: latencies, errors, modes and hit ratios inside their limits"
            }
            Scenario::LatencySpike => {
                "latencies x4 from the first event: latency gates fail within one gate window, latency triggers fire after their `for`"
            }
            Scenario::ErrorSpike => {
                "error ratios at 3x their limit (at least 40%): error gates fail within one window, error triggers fire after their `for`"
            }
            Scenario::FallbackStorm => {
                "60% of requests in the fallback mode: fallback-share gates fail within one window, fallback triggers fire after their `for`"
            }
            Scenario::CacheCold => {
                "cache hit ratios at a third of their floor: hit-ratio gates fail within one window"
            }
            Scenario::NoData => {
                "no events at all: every gate turns `no data` (never pass) once its window has passed"
            }
        }
    }

    /// Whether the scenario changes anything for `plan`'s metrics.
    pub fn applies(self, plan: &Plan) -> bool {
        plan.metrics.iter().any(|m| self.hits(m))
            || matches!(self, Scenario::Healthy | Scenario::NoData)
    }

    /// Whether the scenario degrades metric `m`.
    fn hits(self, m: &Metric) -> bool {
        let id = m.id.as_str();
        match self {
            Scenario::LatencySpike => m.kind == MetricKind::Distribution && m.unit() == Unit::Ms,
            Scenario::ErrorSpike => {
                m.kind == MetricKind::Ratio
                    && ["error", "fail", "timeout"].iter().any(|w| id.contains(w))
            }
            Scenario::FallbackStorm => {
                m.kind == MetricKind::Category && m.values.iter().any(|v| v.contains("fallback"))
            }
            Scenario::CacheCold => {
                m.kind == MetricKind::Ratio && ["cache", "hit"].iter().any(|w| id.contains(w))
            }
            Scenario::Healthy | Scenario::NoData => false,
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The traffic to make: a scenario, and how much slower the canary is than the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    pub scenario: Scenario,
    /// Latency factor for events labelled `canary` (1.0: no difference).
    pub canary_slowdown: f64,
    /// How warm caches are, 0 (just started) to 1: hit ratios climb from halfway between
    /// their floor and their target up to the target, as a real cache warms.
    pub warmth: f64,
    /// The new path is off (the rollout was killed): no event is labelled `canary`, as a
    /// service obeying the published state sends its canary nothing.
    pub canary_off: bool,
}

/// How long simulated caches take to warm up.
pub const WARM_UP: Duration = Duration::from_secs(600);

/// Warmth after `elapsed` of traffic.
pub fn warmth_after(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() / WARM_UP.as_secs_f64()).min(1.0)
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            scenario: Scenario::Healthy,
            canary_slowdown: 1.0,
            warmth: 1.0,
            canary_off: false,
        }
    }
}

/// z-score of a quantile of the standard normal, for the quantiles plans use.
fn z(q: f64) -> f64 {
    match q {
        q if q >= 0.999 => 3.09,
        q if q >= 0.99 => 2.33,
        q if q >= 0.95 => 1.645,
        q if q >= 0.9 => 1.28,
        q if q >= 0.75 => 0.674,
        _ => 0.0,
    }
}

fn number(e: &Expr) -> Option<f64> {
    match &e.kind {
        Kind::Number(n) => Some(*n),
        Kind::Arith(ArithOp::Mul, a, b) => Some(number(a)? * number(b)?),
        _ => None,
    }
}

impl Targets {
    pub fn from_plan(plan: &Plan) -> Targets {
        let mut t = Targets::default();
        let gates = plan.gates.iter().map(|g| (&g.expr, true));
        let triggers = plan.triggers.iter().map(|t| (&t.expr, false));
        for (text, is_gate) in gates.chain(triggers) {
            let Ok(e) = expr::parse(text) else { continue };
            for read in e.metrics() {
                for (k, v) in read.selector {
                    t.labels.entry(k).or_default().insert(v);
                }
            }
            // `any(endpoint, ...)` ranges over the values a label takes: give it three.
            e.visit(&mut |n| {
                if let Kind::Quantified { label, .. } = &n.kind {
                    let values = t.labels.entry(label.clone()).or_default();
                    if values.is_empty() {
                        values.extend((1..=3).map(|i| format!("{label}-{i}")));
                    }
                }
            });
            // Gates say what healthy is; a trigger says what an incident is, so healthy is
            // its opposite. Gates come first and win where both speak.
            t.aim(&e, !is_gate);
        }
        t
    }

    /// Learns targets from a condition that should hold (or, `negated`, should not).
    fn aim(&mut self, e: &Expr, negated: bool) {
        match &e.kind {
            Kind::Logic(_, a, b) => {
                self.aim(a, negated);
                self.aim(b, negated);
            }
            // The guard is a flag, not a target.
            Kind::When(a, _) => self.aim(a, negated),
            // What each value must meet is what the traffic aims at.
            Kind::Quantified { body, .. } => self.aim(body, negated),
            Kind::Cmp(op, lhs, rhs) => {
                let (below, above) = (
                    matches!(op, CmpOp::Le | CmpOp::Lt),
                    matches!(op, CmpOp::Ge | CmpOp::Gt),
                );
                let (below, above) = if negated {
                    (above, below)
                } else {
                    (below, above)
                };
                let Some(limit) = number(rhs) else { return };
                match &lhs.kind {
                    Kind::Metric {
                        aggregate: Aggregate::Quantile(q),
                        metric,
                        ..
                    } if below => {
                        let median = 0.6 * limit / (SIGMA * z(*q)).exp();
                        let slot = self.median.entry(metric.clone()).or_insert(median);
                        *slot = slot.min(median);
                    }
                    Kind::Metric {
                        aggregate: Aggregate::Mean | Aggregate::Last | Aggregate::Max,
                        metric,
                        ..
                    } => {
                        let v = if above && limit <= 1.0 {
                            // A score or share: halfway between the floor and 1.
                            limit + 0.5 * (1.0 - limit)
                        } else if above {
                            limit * 1.2 + 5.0
                        } else if below {
                            limit * 0.5
                        } else {
                            limit
                        };
                        self.median.entry(metric.clone()).or_insert(v);
                    }
                    Kind::Metric {
                        aggregate: Aggregate::Rate,
                        metric,
                        ..
                    } => {
                        let bounds = self.bounds.entry(metric.clone()).or_default();
                        if below {
                            bounds.1 = Some(bounds.1.map_or(limit, |b| b.min(limit)));
                        } else if above {
                            bounds.0 = Some(bounds.0.map_or(limit, |b| b.max(limit)));
                        } else if *op == CmpOp::Eq && !negated {
                            *bounds = (Some(limit), Some(limit));
                        }
                    }
                    Kind::Metric {
                        aggregate: Aggregate::Share(value),
                        metric,
                        ..
                    } if below => {
                        let share = self.shares.entry(metric.clone()).or_default();
                        let cap = share.entry(value.clone()).or_insert(0.4 * limit);
                        *cap = cap.min(0.4 * limit);
                    }
                    // A rate a service counts (requests a second): each simulated event
                    // carries a share of it, half again the limit at the slowest event rate
                    // the simulator is run at.
                    Kind::Metric {
                        aggregate: Aggregate::PerSecond,
                        metric,
                        ..
                    } if above => {
                        let share = 1.5 * limit / SLOWEST_EVENTS_PER_SECOND;
                        let slot = self.per_event.entry(metric.clone()).or_insert(share);
                        *slot = slot.max(share);
                    }
                    Kind::Arith(ArithOp::Div, a, b) => {
                        if let (
                            Kind::Metric { metric: part, .. },
                            Kind::Metric { metric: whole, .. },
                        ) = (&a.kind, &b.kind)
                        {
                            let ratio = if above {
                                limit + 0.6 * (1.0 - limit)
                            } else {
                                0.4 * limit
                            };
                            self.per_event.insert(whole.clone(), 10.0);
                            self.per_event.entry(part.clone()).or_insert(10.0 * ratio);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// A value for `metric` under `scenario`; `factor` scales latencies.
    fn value(&self, metric: &Metric, mix: Mix, factor: f64, rng: &mut impl Rng) -> Value {
        let scenario = Some(mix.scenario).filter(|s| s.hits(metric));
        match metric.kind {
            MetricKind::Distribution => {
                let default = if metric.unit() == Unit::Ms {
                    240.0
                } else {
                    0.9
                };
                let median = self
                    .median
                    .get(&metric.id)
                    .copied()
                    .unwrap_or(default)
                    .max(1e-6);
                let dist = LogNormal::new(
                    median.ln(),
                    if metric.unit() == Unit::Ms {
                        SIGMA
                    } else {
                        SCORE_SIGMA
                    },
                )
                .unwrap_or_else(|_| LogNormal::new(0.0, 1.0).unwrap());
                let mut v: f64 = dist.sample(rng);
                if metric.unit() == Unit::Ms {
                    v *= factor;
                }
                if scenario == Some(Scenario::LatencySpike) {
                    v *= SPIKE;
                }
                // A bounded score stays in its bounds, as a real one does.
                if let Some([low, high]) = metric.range {
                    v = v.clamp(low, high);
                }
                json!((v * 1000.0).round() / 1000.0)
            }
            MetricKind::Gauge => {
                let level = self.median.get(&metric.id).copied().unwrap_or(1.0);
                json!((level * rng.random_range(1.0..1.1) * 10.0).round() / 10.0)
            }
            MetricKind::Counter => {
                let mean = self.per_event.get(&metric.id).copied().unwrap_or(2.0);
                json!((mean * rng.random_range(0.9..1.1) * 100.0).round() / 100.0)
            }
            MetricKind::Ratio => {
                let p = match self.bounds.get(&metric.id) {
                    Some((Some(lo), Some(hi))) => (lo + hi) / 2.0,
                    Some((None, Some(hi))) => 0.4 * hi,
                    Some((Some(lo), None)) => 1.0 - 0.4 * (1.0 - lo),
                    _ => 0.5,
                };
                let p = match (scenario, self.bounds.get(&metric.id)) {
                    (Some(Scenario::ErrorSpike), Some((_, Some(hi)))) => (3.0 * hi).max(0.4),
                    (Some(Scenario::ErrorSpike), _) => 0.4,
                    (Some(Scenario::CacheCold), Some((Some(lo), _))) => lo / 3.0,
                    (Some(Scenario::CacheCold), _) => 0.05,
                    (None, bounds) if Scenario::CacheCold.hits(metric) => {
                        let floor = bounds.and_then(|b| b.0).unwrap_or(0.0);
                        floor + (p - floor) * (0.5 + 0.5 * mix.warmth.clamp(0.0, 1.0))
                    }
                    _ => p,
                };
                json!(rng.random_bool(p.clamp(0.0, 1.0)))
            }
            MetricKind::Category => {
                if scenario == Some(Scenario::FallbackStorm) && rng.random_bool(0.6) {
                    let fallback = metric.values.iter().find(|v| v.contains("fallback"));
                    return json!(fallback);
                }
                let capped = self.shares.get(&metric.id);
                let fixed: f64 = capped.map_or(0.0, |c| c.values().sum());
                let free: Vec<&String> = metric
                    .values
                    .iter()
                    .filter(|v| capped.is_none_or(|c| !c.contains_key(*v)))
                    .collect();
                let roll: f64 = rng.random();
                let mut acc = 0.0;
                for v in &metric.values {
                    acc += match capped.and_then(|c| c.get(v)) {
                        Some(share) => *share,
                        // The first free value takes most of the rest, like the runbooks' 70/25.
                        None if Some(&v) == free.first() => (1.0 - fixed) * 0.72,
                        None => (1.0 - fixed) * 0.28 / (free.len().max(2) - 1) as f64,
                    };
                    if roll < acc {
                        return json!(v);
                    }
                }
                json!(metric.values.first())
            }
        }
    }

    /// One event: one value for each label the gates select on, and a value for every metric.
    pub fn event(&self, plan: &Plan, mix: Mix, rng: &mut impl Rng) -> Value {
        let labels: Map<String, Value> = self
            .labels
            .iter()
            .filter_map(|(k, vs)| {
                let open: Vec<&String> = vs
                    .iter()
                    .filter(|v| !(mix.canary_off && *v == "canary"))
                    .collect();
                let pick = open.get(rng.random_range(0..open.len().max(1)))?;
                Some((k.clone(), json!(pick)))
            })
            .collect();
        let canary = labels.values().any(|v| v == "canary");
        let factor = if canary { mix.canary_slowdown } else { 1.0 };
        let values: Map<String, Value> = plan
            .metrics
            .iter()
            .map(|m| (m.id.clone(), self.value(m, mix, factor, rng)))
            .collect();
        json!({ "labels": labels, "values": values })
    }
}

/// Fills `store` with `span` of healthy, warm history before `now` (or before the oldest data
/// it already holds, so nothing is counted twice), recorded in time order as if each event had
/// arrived live, with a daily swell in volume. The last hour, which gate windows read, gets
/// `per_step` events per 10 s step on average, like live traffic; older history, drawn in
/// minutes where only its shape shows, a fiftieth of that. A fresh demo's 24h charts then show a
/// day instead of gaps. Returns the samples recorded.
pub fn backfill(
    plan: &Plan,
    store: &mut MetricStore,
    span: Millis,
    now: Millis,
    per_step: u32,
    rng: &mut impl Rng,
) -> usize {
    let (buckets, recorded) = history(
        plan,
        *store.config(),
        store.earliest(),
        span,
        now,
        per_step,
        rng,
    );
    store.import(buckets);
    recorded
}

/// The buckets `backfill` imports, built apart from the live store (so its lock is held only
/// for the import, not for seconds of simulation): history before `earliest` (the oldest data
/// the store holds) or `now`, ending at the 10 s bucket where the live data begins, so the
/// charts run on without a hole. Returns them with the samples recorded.
pub fn history(
    plan: &Plan,
    config: StoreConfig,
    earliest: Option<Millis>,
    span: Millis,
    now: Millis,
    per_step: u32,
    rng: &mut impl Rng,
) -> (Vec<PersistedBucket>, usize) {
    let align = |t: Millis, width: Millis| t - t.rem_euclid(width);
    // Whole buckets only, up to the fine bucket where the store's own data begins: a rolled-up
    // minute would replace the live buckets inside it.
    let until = align(earliest.map_or(now, |t| t.min(now)), config.fine);
    let from = align(now - span.min(config.lookback()), config.broad);
    if from >= until {
        return (Vec::new(), 0);
    }
    // Built in a store of its own, so its roll-ups run on its own clock.
    let mut history = MetricStore::new(config, plan.metrics.iter().map(|m| (m.id.clone(), m.kind)));
    let targets = Targets::from_plan(plan);
    let mix = Mix {
        warmth: 1.0,
        ..Mix::default()
    };
    let mut recorded = 0;
    let mut step = from;
    while step < until {
        let phase = step as f64 / DAY as f64 * std::f64::consts::TAU;
        let thin = if step < now - config.fine_retention {
            0.1
        } else {
            1.0
        };
        // Beyond a day, drawn in 10 min buckets, a step a minute of a few events is plenty for
        // the shape (and keeps a week's backfill to seconds).
        let (stride, thin) = if step < now - config.coarse_retention {
            (config.coarse, thin / 3.0)
        } else {
            (config.fine, thin)
        };
        let n = (f64::from(per_step) * thin * (0.7 + 0.3 * phase.sin()))
            .round()
            .max(1.0) as i64;
        // One bucket's events as one batch: within a 10 s bucket their order cannot show.
        let body: String = (0..n)
            .map(|_| targets.event(plan, mix, rng).to_string() + "\n")
            .collect();
        if let Ok((records, _)) = ingest::parse_batch(plan, &body, step) {
            for sample in records.samples(plan) {
                recorded += usize::from(history.record(&sample, step).is_ok());
            }
        }
        step += stride;
    }
    history.compact(until);
    (history.export_buckets(from, until - 1), recorded)
}

#[cfg(test)]
mod tests {
    use cutover_core::gates::{Compiled, Memory, Verdict, evaluate};
    use cutover_core::time::Millis;
    use cutover_core::time::{HOUR, MINUTE, SECOND};
    use cutover_core::window::{MetricStore, StoreConfig};

    use super::*;

    fn example_plans() -> Vec<Plan> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans");
        let mut plans: Vec<Plan> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                cutover_core::plan::parse(&path.display().to_string(), &text).unwrap()
            })
            .collect();
        plans.sort_by(|a, b| a.id.cmp(&b.id));
        plans
    }

    const END: Millis = 1_800_000_000_000;

    /// Five minutes of `mix` traffic for `plan`, 20 events a second. Seeded: healthy traffic
    /// near a 99.9 % bound crosses it by chance a few times in a hundred runs, and a test must
    /// say the same thing every time it runs.
    fn traffic(plan: &Plan, mix: Mix) -> MetricStore {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let targets = Targets::from_plan(plan);
        let mut store = MetricStore::new(
            StoreConfig::default(),
            plan.metrics.iter().map(|m| (m.id.clone(), m.kind)),
        );
        for i in 0..6000i64 {
            let at = END - 5 * MINUTE + i * 50;
            let body = targets.event(plan, mix, &mut rng).to_string();
            let (records, report) = ingest::parse_batch(plan, &body, at).unwrap();
            assert_eq!(report.accepted, 1, "{}: {:?}", plan.id, report.rejected);
            for s in records.samples(plan) {
                store.record(&s, at).unwrap();
            }
        }
        store
    }

    fn evaluate_in(
        plan: &Plan,
        store: &MetricStore,
        stage: &str,
    ) -> cutover_core::gates::Evaluated {
        let compiled = Compiled::new(plan).unwrap();
        evaluate(
            plan,
            &compiled,
            &mut Memory::default(),
            store,
            cutover_core::gates::Moment {
                stage: Some(stage),
                // Entered as the traffic began: comparisons read all of it.
                entered_at: Some(END - 5 * MINUTE),
                armed: true,
                at: END + SECOND,
            },
        )
    }

    /// Five minutes of simulated traffic keep every gate of every example plan green, in every
    /// stage: the demo starts healthy.
    #[test]
    fn simulated_traffic_keeps_every_example_gate_green() {
        for plan in example_plans() {
            let store = traffic(&plan, Mix::default());
            for stage in &plan.stages {
                let ev = evaluate_in(&plan, &store, &stage.id);
                for g in &ev.gates {
                    // A comparison may still be gathering evidence after five minutes; it
                    // must never find healthy traffic worse.
                    let still_comparing = g.verdict == Verdict::NotYetKnown
                        && g.comparisons.iter().all(|c| {
                            c.sequential.as_ref().is_some_and(|s| {
                                s.split_off.is_none()
                                    && s.comparison.finding
                                        != cutover_core::sequential::Finding::Worse
                            })
                        })
                        && !g.comparisons.is_empty();
                    assert!(
                        matches!(g.verdict, Verdict::Pass | Verdict::NotApplicable)
                            || still_comparing,
                        "{} in {}: gate {} is {:?}: {:?} {:?}",
                        plan.id,
                        stage.id,
                        g.id,
                        g.verdict,
                        g.reason,
                        g.comparisons
                    );
                }
                for t in &ev.triggers {
                    assert_ne!(
                        t.verdict,
                        Verdict::Pass,
                        "{}: trigger {} breaches on healthy traffic",
                        plan.id,
                        t.id
                    );
                }
            }
        }
    }

    /// With the new path off (a killed rollout), no event goes to the canary; with it on,
    /// some do.
    #[test]
    fn a_killed_canary_gets_no_traffic() {
        use rand::SeedableRng;
        let plan = example_plans()
            .into_iter()
            .find(|p| p.id == "spiralogic")
            .unwrap();
        let targets = Targets::from_plan(&plan);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let canaries = |mix: Mix, rng: &mut rand::rngs::StdRng| {
            (0..500)
                .filter(|_| {
                    let event = targets.event(&plan, mix, rng);
                    event["labels"]
                        .as_object()
                        .unwrap()
                        .values()
                        .any(|v| v == "canary")
                })
                .count()
        };
        assert!(canaries(Mix::default(), &mut rng) > 50);
        let off = Mix {
            canary_off: true,
            ..Mix::default()
        };
        assert_eq!(canaries(off, &mut rng), 0);
    }

    /// A backfilled day has data in every 4-minute step of the 24h view, stays healthy, and
    /// a second backfill (a restart) adds nothing to what is there.
    #[test]
    fn a_backfilled_day_fills_the_24h_view_once() {
        let plan = example_plans()
            .into_iter()
            .find(|p| p.id == "spiralogic")
            .unwrap();
        let mut store = MetricStore::new(
            StoreConfig::default(),
            plan.metrics.iter().map(|m| (m.id.clone(), m.kind)),
        );
        // Seeded, as `traffic` above: a day of random traffic near a gate's bound must say the
        // same thing every run.
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        // 20 events a second, as `traffic` above.
        let recorded = backfill(&plan, &mut store, DAY, END, 200, &mut rng);
        assert!(recorded > 8640 * 4, "{recorded}");
        store.compact(END);
        let step = 4 * MINUTE;
        let count = |store: &MetricStore| {
            store.series(
                "latency_ms",
                &Default::default(),
                &Aggregate::Count,
                END - DAY + step,
                END - step,
                step,
            )
        };
        let day = count(&store);
        assert!(day.len() >= 358, "{}", day.len());
        assert!(
            day.iter().all(|p| p.v.is_some_and(|v| v > 0.0)),
            "a gap in the day"
        );
        let ev = evaluate_in(&plan, &store, "canary");
        let failing: Vec<_> = ev
            .gates
            .iter()
            .filter(|g| g.verdict == Verdict::Fail)
            .map(|g| &g.id)
            .collect();
        assert!(failing.is_empty(), "{failing:?}");
        assert_eq!(backfill(&plan, &mut store, DAY, END, 200, &mut rng), 0);
        assert_eq!(count(&store), day, "a second backfill counted twice");
    }

    /// Live traffic began mid-minute, then the history was made: the charts run from one into
    /// the other without an empty step (the demo's mode-mix chart once showed a hole of up to
    /// a minute there, where history stopped at the whole minute).
    #[test]
    fn history_runs_into_live_data_without_a_hole() {
        use rand::SeedableRng;
        let plan = example_plans()
            .into_iter()
            .find(|p| p.id == "spiralogic")
            .unwrap();
        let mut store = MetricStore::new(
            StoreConfig::default(),
            plan.metrics.iter().map(|m| (m.id.clone(), m.kind)),
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let targets = Targets::from_plan(&plan);
        let live_from = END - 2 * MINUTE - 25 * SECOND;
        let mut at = live_from;
        while at <= END {
            let body = targets.event(&plan, Mix::default(), &mut rng).to_string() + "\n";
            let (records, _) = ingest::parse_batch(&plan, &body, at).unwrap();
            for sample in records.samples(&plan) {
                store.record(&sample, at).unwrap();
            }
            if at == live_from {
                // The demo makes its history once the live traffic has begun.
                assert!(backfill(&plan, &mut store, HOUR, at, 50, &mut rng) > 0);
            }
            at += SECOND;
        }
        store.compact(END);
        let step = 10 * SECOND;
        let series = store.series(
            "mode",
            &Default::default(),
            &Aggregate::Count,
            END - 10 * MINUTE,
            END - step,
            step,
        );
        let empty: Vec<Millis> = series
            .iter()
            .filter(|p| p.v.is_none_or(|v| v <= 0.0))
            .map(|p| (p.t - END) / SECOND)
            .collect();
        assert!(
            empty.is_empty(),
            "empty steps at (s from the end) {empty:?}"
        );
    }

    /// Caches warm up: a cold start has a lower hit ratio than a warm one, but still passes
    /// the plan's floor, so the demo starts healthy and the chart climbs.
    #[test]
    fn cache_hits_trend_up_from_a_cold_start_without_failing() {
        let plan = example_plans()
            .into_iter()
            .find(|p| p.id == "spiralogic")
            .unwrap();
        let hit = |warmth: f64| {
            let store = traffic(
                &plan,
                Mix {
                    warmth,
                    ..Mix::default()
                },
            );
            let ev = evaluate_in(&plan, &store, "canary");
            let gate = ev.gates.iter().find(|g| g.id == "cache-hit").unwrap();
            (gate.verdict, gate.comparisons[0].left_value.unwrap())
        };
        let (cold_verdict, cold) = hit(0.0);
        let (warm_verdict, warm) = hit(1.0);
        assert_eq!((cold_verdict, warm_verdict), (Verdict::Pass, Verdict::Pass));
        assert!(cold + 0.05 < warm, "cold {cold} vs warm {warm}");
        assert_eq!(warmth_after(Duration::ZERO), 0.0);
        assert_eq!(warmth_after(WARM_UP * 2), 1.0);
    }

    /// Each incident scenario fails a gate (or breaches a trigger) that reads a metric it
    /// degrades, in every example plan it applies to: a demo can show each trigger firing.
    #[test]
    fn each_incident_trips_what_it_names_in_every_plan_it_applies_to() {
        let incidents = [
            Scenario::LatencySpike,
            Scenario::ErrorSpike,
            Scenario::FallbackStorm,
            Scenario::CacheCold,
        ];
        let mut tripped = 0;
        for plan in example_plans() {
            for scenario in incidents {
                let hit: Vec<&str> = plan
                    .metrics
                    .iter()
                    .filter(|m| scenario.hits(m))
                    .map(|m| m.id.as_str())
                    .collect();
                let reads_hit = |text: &str| {
                    expr::parse(text)
                        .map(|e| e.metrics().iter().any(|r| hit.contains(&r.metric.as_str())))
                        .unwrap_or(false)
                };
                let watched = plan.gates.iter().any(|g| reads_hit(&g.expr))
                    || plan.triggers.iter().any(|t| reads_hit(&t.expr));
                if !watched {
                    continue;
                }
                let mix = Mix {
                    scenario,
                    ..Mix::default()
                };
                let store = traffic(&plan, mix);
                // Some triggers are armed only in some stages (a shadow stage's flag): the
                // incident must show in at least one.
                let mut failing: Vec<String> = Vec::new();
                for stage in &plan.stages {
                    let ev = evaluate_in(&plan, &store, &stage.id);
                    let gates = ev
                        .gates
                        .iter()
                        .filter(|g| g.verdict == Verdict::Fail && reads_hit(&g.expr))
                        .map(|g| g.id.clone());
                    let triggers = ev
                        .triggers
                        .iter()
                        .filter(|t| t.verdict == Verdict::Pass && reads_hit(&t.expr))
                        .map(|t| t.id.clone());
                    failing.extend(gates.chain(triggers));
                }
                assert!(
                    !failing.is_empty(),
                    "{scenario} in {}: nothing reading {hit:?} failed",
                    plan.id
                );
                tripped += 1;
            }
        }
        assert!(
            tripped >= 8,
            "only {tripped} plan/scenario pairs were exercised"
        );
    }
}
