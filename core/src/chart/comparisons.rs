//! The chart of a gate's sequential comparison: canary against baseline as the comparison
//! saw it from the stage's entry to each moment, its estimate with the interval around it,
//! and the line past which the canary is worse. The interval narrowing over the stage, and
//! where it sits against the line, is what "not yet known" and "a decision in about" mean.

use crate::expr::{self, Kind, MetricRead, Test};
use crate::plan::Plan;
use crate::query::Aggregate;
use crate::sequential::{Measure, Tally};
use crate::series::{Point, Series};
use crate::time::Millis;
use crate::window::MetricStore;

use super::*;

/// A gate's comparison, as its chart reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonChart {
    pub gate: String,
    pub title: String,
    pub canary: MetricRead,
    pub baseline: MetricRead,
    pub test: Test,
    pub margin: f64,
    pub alpha: f64,
    /// A compared mean's bounds.
    pub range: Option<[f64; 2]>,
    /// What the estimate and interval are in: a ratio less one (quantiles) and a rate's
    /// difference read as percentages, a mean's difference in its metric's unit.
    pub unit: Unit,
}

impl ComparisonChart {
    fn measure(&self) -> Measure {
        if matches!(self.canary.aggregate, Aggregate::Quantile(_)) {
            Measure::Ratio
        } else {
            Measure::Difference
        }
    }

    /// Where the limit sits on the chart: `+10%` of baseline for a ratio, the margin for a
    /// difference (below zero when lower is worse).
    pub fn limit(&self) -> f64 {
        let sign = match self.test.worse() {
            crate::sequential::Worse::Above => 1.0,
            crate::sequential::Worse::Below => -1.0,
        };
        sign * self.margin
    }

    fn ids(&self) -> [String; 3] {
        ["estimate", "low", "high"].map(|part| format!("compare:{}.{part}", self.gate))
    }

    pub fn spec(&self) -> ChartSpec {
        let [estimate, low, high] = self.ids();
        let of = match self.measure() {
            Measure::Ratio => "canary / baseline - 1",
            Measure::Difference => "canary - baseline",
        };
        ChartSpec {
            id: format!("compare-{}", self.gate),
            title: format!("{}: {of}, since the stage began", self.title),
            style: Style::Lines,
            series: vec![estimate.clone(), low.clone(), high.clone()],
            unit: self.unit.clone(),
            thresholds: vec![Threshold {
                series: estimate,
                value: self.limit(),
                gate: self.gate.clone(),
                kind: LimitKind::Gate,
            }],
            labels: vec![
                "estimate".into(),
                format!("interval ({:.0}%)", 100.0 * (1.0 - self.alpha)),
                "interval".into(),
            ],
            limits: vec![low, high],
        }
    }
}

/// A chart for each gate whose condition is one sequential comparison (`not_above(...)`).
pub fn comparison_charts(plan: &Plan) -> Vec<ComparisonChart> {
    let mut out = Vec::new();
    for gate in &plan.gates {
        let Ok(mut e) = expr::parse(&gate.expr) else {
            continue;
        };
        e.resolve_ranges(&|metric: &str| plan.metric(metric).and_then(|m| m.range));
        let mut found = None;
        e.visit(&mut |node| {
            if let Kind::Compare {
                test,
                canary,
                baseline,
                margin,
                alpha,
                range,
            } = &node.kind
                && found.is_none()
                && let (Some(c), Some(b)) = (canary.read(), baseline.read())
            {
                found = Some((*test, c, b, *margin, *alpha, *range));
            }
        });
        let Some((test, canary, baseline, margin, alpha, range)) = found else {
            continue;
        };
        let unit = match canary.aggregate {
            Aggregate::Quantile(_) | Aggregate::Rate => Unit::Ratio,
            _ => plan
                .metric(&canary.metric)
                .map(|m| m.unit())
                .unwrap_or_default(),
        };
        out.push(ComparisonChart {
            gate: gate.id.clone(),
            title: gate.title.clone(),
            canary,
            baseline,
            test,
            margin,
            alpha: alpha.unwrap_or(expr::DEFAULT_ALPHA),
            range,
            unit,
        });
    }
    out
}

/// The chart's three series over `[from, to]` in `step`s: at each step, the comparison over
/// everything from `entered_at` to the step's end. Nothing before the stage was entered.
/// Each bucket is merged once, in time order, however long the stage.
pub fn comparison_series(
    chart: &ComparisonChart,
    store: &MetricStore,
    entered_at: Option<Millis>,
    from: Millis,
    to: Millis,
    step: Millis,
) -> Vec<Series> {
    let step = step.max(store.config().fine);
    let first = from - from.rem_euclid(step);
    let steps: Vec<Millis> = (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to)
        .collect();
    let mut points: [Vec<Point>; 3] = Default::default();
    // What came before the first point, as one tally (its rolled-up sketches merged once per
    // roll-up, not every second), then each bucket after it in time order.
    let (arms, mut tallies) = match entered_at {
        Some(entered) => {
            let end = to.saturating_add(step);
            let split = first.max(entered);
            let [canary, baseline] = [&chart.canary, &chart.baseline].map(|read| {
                (
                    store.tally_starts(&read.metric, &read.selector, entered, split),
                    store.tallies(&read.metric, &read.selector, split, end),
                )
            });
            (Some([canary.1, baseline.1]), [canary.0, baseline.0])
        }
        None => (None, [Tally::default(), Tally::default()]),
    };
    let mut at = [0usize; 2];
    for &t in &steps {
        let end = t + step;
        let value = arms.as_ref().and_then(|arms| {
            for (i, arm) in arms.iter().enumerate() {
                while let Some((start, tally)) = arm.get(at[i])
                    && *start < end
                {
                    tallies[i].then(tally);
                    at[i] += 1;
                }
            }
            if entered_at.is_some_and(|e| end <= e) || tallies.iter().any(|t| t.count == 0) {
                return None;
            }
            let k = expr::compare_tallies(
                &chart.canary.aggregate,
                (&tallies[0], &tallies[1]),
                chart.test.worse(),
                (chart.margin, chart.alpha, chart.range),
            )?;
            let estimate = estimate(&chart.canary.aggregate, &tallies[0], &tallies[1]);
            let shift = |v: Option<f64>| match k.measure {
                Measure::Ratio => v.map(|r| r - 1.0),
                Measure::Difference => v,
            };
            Some([shift(estimate), shift(k.low), shift(k.high)])
        });
        for (i, series) in points.iter_mut().enumerate() {
            series.push(Point {
                t,
                v: value.and_then(|v| v[i]).filter(|v| v.is_finite()),
            });
        }
    }
    let spec = chart.spec();
    spec.series
        .into_iter()
        .zip(spec.labels)
        .zip(points)
        .map(|((id, label), points)| Series {
            id,
            label,
            unit: chart.unit.clone(),
            points,
        })
        .collect()
}

/// The point estimate: canary's quantile over baseline's, or the difference of rates or means.
fn estimate(aggregate: &Aggregate, c: &Tally, b: &Tally) -> Option<f64> {
    let n = |t: &Tally| t.count.max(1) as f64;
    match aggregate {
        Aggregate::Quantile(q) => {
            let at = |t: &Tally| t.sketch.as_ref()?.quantile(*q).ok().flatten();
            let (c, b) = (at(c)?, at(b)?);
            (b > 0.0).then(|| c / b)
        }
        Aggregate::Rate => Some(c.trues as f64 / n(c) - b.trues as f64 / n(b)),
        _ => Some(c.sum / n(c) - b.sum / n(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MINUTE, SECOND};
    use crate::window::{Sample, SampleValue, StoreConfig};

    const PLAN: &str = r#"
[rollout]
id = "c"
title = "C"

[[stage]]
id = "canary"
traffic = 50

[[metric]]
id = "latency_ms"
kind = "distribution"
unit = "ms"

[[gate]]
id = "vs"
title = "p95 vs baseline"
expr = 'not_above(p95(latency_ms{variant="canary"}), p95(latency_ms{variant="baseline"}), 10%)'
window = "1m"
hold = "1m"
"#;

    #[test]
    fn the_interval_starts_at_the_stage_entry_and_narrows_around_the_estimate() {
        let plan = crate::plan::parse("c.toml", PLAN).unwrap();
        let charts = comparison_charts(&plan);
        assert_eq!(charts.len(), 1);
        let chart = &charts[0];
        assert_eq!(chart.limit(), 0.10);
        let spec = chart.spec();
        assert_eq!(spec.id, "compare-vs");
        assert_eq!(spec.thresholds[0].value, 0.10);
        assert!(
            crate::chart::charts(&plan)
                .iter()
                .any(|c| c.id == "compare-vs")
        );

        let mut store = MetricStore::new(
            StoreConfig::default(),
            [(
                "latency_ms".to_string(),
                crate::query::MetricKind::Distribution,
            )],
        );
        // Ten minutes of equal arms, the same spread of values each second.
        for s in 0..600 {
            let ts = s * SECOND;
            for i in 0..40 {
                let variant = if i % 2 == 0 { "canary" } else { "baseline" };
                let sample = Sample {
                    metric: "latency_ms".into(),
                    labels: [("variant".to_string(), variant.to_string())].into(),
                    ts,
                    value: SampleValue::Number(100.0 + f64::from((i / 2 * 37 + s as i32) % 100)),
                };
                store.record(&sample, ts).unwrap();
            }
        }
        let entered = 2 * MINUTE;
        let series = comparison_series(
            chart,
            &store,
            Some(entered),
            0,
            10 * MINUTE - 1,
            10 * SECOND,
        );
        assert_eq!(series.len(), 3);
        let [estimate, low, high] = [&series[0], &series[1], &series[2]];
        assert_eq!(estimate.id, "compare:vs.estimate");
        // Nothing before the stage was entered.
        let before = estimate
            .points
            .iter()
            .take_while(|p| p.t + 10 * SECOND <= entered);
        assert!(before.clone().count() > 0 && before.clone().all(|p| p.v.is_none()));
        let width = |i: usize| high.points[i].v.unwrap() - low.points[i].v.unwrap();
        let (early, last) = (
            low.points.iter().position(|p| p.v.is_some()).unwrap(),
            low.points.len() - 1,
        );
        assert!(
            width(last) < width(early) / 2.0,
            "{} vs {}",
            width(last),
            width(early)
        );
        let e = estimate.points[last].v.unwrap();
        assert!(e.abs() < 0.05, "equal arms estimate {e}");
        assert!(low.points[last].v.unwrap() <= e && e <= high.points[last].v.unwrap());
        // Without a stage there is nothing to draw.
        let none = comparison_series(chart, &store, None, 0, MINUTE, 10 * SECOND);
        assert!(none.iter().all(|s| s.points.iter().all(|p| p.v.is_none())));
    }
}
