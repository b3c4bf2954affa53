//! Charts for relative gates: the lines a gate compares and its moving limit, step by step.

use std::collections::BTreeMap;

use crate::expr::{self, CmpOp, EvalContext, Expr, Kind, MetricRead};
use crate::plan::Plan;
use crate::query::{Aggregate, MetricSource, Selector};
use crate::series::{Point, Series};
use crate::time::Millis;
use crate::window::MetricStore;

use super::*;

/// One line of a gate's chart: a metric the comparison reads, or a side of it that is
/// arithmetic over metrics (`1.10 * p95(latency_ms{variant="baseline"})`).
#[derive(Debug, Clone, PartialEq)]
pub struct GateLine {
    /// Series id in the frame: `gate:{gate}.{n}`.
    pub id: String,
    /// `canary p95`, or the expression of a derived side.
    pub label: String,
    pub expr: Expr,
    /// The right-hand side of a comparison: the limit the left side must keep to.
    pub limit: bool,
}

/// The chart of a gate that compares variants or metrics with each other, which no fixed
/// threshold line can show: both sides over time, and the limit as it moves.
#[derive(Debug, Clone, PartialEq)]
pub struct GateChart {
    /// The gate's id, or the trigger's (see `kind`).
    pub gate: String,
    /// A gate's chart, or the chart of a trigger whose line no other chart can show.
    pub kind: LimitKind,
    pub title: String,
    /// The metric read first, whose chart this one follows.
    pub metric: Option<String>,
    /// As [`ChartSpec::unit`].
    pub unit: Unit,
    pub lines: Vec<GateLine>,
    pub thresholds: Vec<Threshold>,
}

impl GateChart {
    pub fn spec(&self) -> ChartSpec {
        ChartSpec {
            id: match self.kind {
                LimitKind::Gate => format!("gate-{}", self.gate),
                LimitKind::Alert | LimitKind::Kill => format!("trigger-{}", self.gate),
            },
            title: self.title.clone(),
            style: Style::Lines,
            series: self.lines.iter().map(|l| l.id.clone()).collect(),
            unit: self.unit.clone(),
            thresholds: self.thresholds.clone(),
            labels: self.lines.iter().map(|l| l.label.clone()).collect(),
            limits: self
                .lines
                .iter()
                .filter(|l| l.limit)
                .map(|l| l.id.clone())
                .collect(),
        }
    }
}

/// `canary p95`, `baseline rate`, `p99`: the variant before the aggregate.
pub(super) fn read_label(read: &MetricRead) -> String {
    let mut words: Vec<String> = read.selector.values().cloned().collect();
    words.push(match &read.aggregate {
        Aggregate::Share(value) => value.clone(),
        other => other.name(),
    });
    words.join(" ")
}

/// Whether a comparison needs a chart of its own: it compares metrics with each other, limits
/// one variant, or limits arithmetic over metrics (`sum(ok) / sum(reads) >= 85%`). PromQL is
/// charted by Prometheus, and `==`/`!=` have no line to draw.
pub(super) fn needs_gate_chart(op: CmpOp, lhs: &Expr, rhs: &Expr) -> bool {
    let mut promql = false;
    for side in [lhs, rhs] {
        side.visit(&mut |n| promql |= matches!(n.kind, Kind::PromQl(_)));
    }
    let (left, right) = (lhs.metrics(), rhs.metrics());
    let selected = left.iter().chain(&right).any(|r| !r.selector.is_empty());
    let derived = !left.is_empty() && !matches!(lhs.kind, Kind::Metric { .. });
    !matches!(op, CmpOp::Eq | CmpOp::Ne)
        && !promql
        && !reads_the_past(lhs)
        && !reads_the_past(rhs)
        && ((!left.is_empty() && !right.is_empty()) || selected || derived)
}

/// Whether `e` reads another time than the step's own (`offset`, `at_entry`) or the stage's
/// history (`fired`): a chart drawn step by step from the live window cannot show it, and a
/// line that looked right but was not would be worse than none.
pub(super) fn reads_the_past(e: &Expr) -> bool {
    let mut past = false;
    e.visit(&mut |n| {
        past |= match &n.kind {
            Kind::Metric { offset, .. } => *offset != 0,
            Kind::AtEntry(_) | Kind::Fired(_) => true,
            _ => false,
        }
    });
    past
}

/// A chart for each gate that no metric chart can show with a fixed line: canary against
/// baseline (`p95(canary) <= 1.10 * p95(baseline)`), one metric against another (`p99 <= 2 *
/// p95`), a limit on one variant (`rate(error{variant="baseline"}) <= 1%`), or a limit on
/// arithmetic over metrics (`sum(queries_successful) / sum(reads_total) >= 85%`).
///
/// A trigger of that kind (`p95(latency_ms{variant="baseline"}) > 500ms`) puts its line on a
/// gate chart that already draws its left side, else gets a chart of its own.
pub fn gate_charts(plan: &Plan) -> Vec<GateChart> {
    let mut out: Vec<GateChart> = Vec::new();
    for (id, title, text, kind) in limit_sources(plan) {
        let Ok(e) = expr::parse(text) else {
            continue;
        };
        let mut comparisons: Vec<(Expr, Expr)> = Vec::new();
        e.visit(&mut |node| {
            if let Some((op, lhs, rhs)) = node.plain_comparison()
                && needs_gate_chart(op, &lhs, &rhs)
            {
                comparisons.push((lhs, rhs));
            }
        });
        let Some((lhs, rhs)) = comparisons.first() else {
            continue;
        };
        if kind != LimitKind::Gate {
            // A fixed line on a left side some chart already draws goes on that chart.
            let drawn = out.iter_mut().find_map(|c| {
                let line = c.lines.iter().find(|l| &l.expr == lhs)?.id.clone();
                Some((c, line))
            });
            if let (Some((chart, series)), Some(value)) = (drawn, constant(rhs)) {
                chart.thresholds.push(Threshold {
                    series,
                    value,
                    gate: id.to_string(),
                    kind,
                });
                continue;
            }
        }
        let prefix = if kind == LimitKind::Gate {
            "gate"
        } else {
            "trigger"
        };
        let mut chart = GateChart {
            gate: id.to_string(),
            kind,
            title: title.to_string(),
            metric: lhs.metrics().first().map(|r| r.metric.clone()),
            unit: expr_unit(plan, lhs)
                .or_else(|| expr_unit(plan, rhs))
                .unwrap_or_default(),
            lines: Vec::new(),
            thresholds: Vec::new(),
        };
        let add = |chart: &mut GateChart, label: String, expr: &Expr, limit: bool| {
            if let Some(line) = chart.lines.iter().find(|l| &l.expr == expr) {
                return line.id.clone();
            }
            let id = format!("{prefix}:{}.{}", id, chart.lines.len());
            chart.lines.push(GateLine {
                id: id.clone(),
                label,
                expr: expr.clone(),
                limit,
            });
            id
        };
        // The metrics compared, in reading order, where they share the chart's unit (the
        // counts behind a ratio would flatten it)...
        for (lhs, rhs) in &comparisons {
            for side in [lhs, rhs] {
                side.visit(&mut |n| {
                    if let Some(read) = n.read()
                        && expr_unit(plan, n).as_ref() == Some(&chart.unit)
                    {
                        add(&mut chart, read_label(&read), n, false);
                    }
                });
            }
        }
        // ...then each left side that is arithmetic, with its fixed or moving limit.
        for (lhs, rhs) in &comparisons {
            let left =
                (!lhs.metrics().is_empty()).then(|| add(&mut chart, lhs.to_string(), lhs, false));
            match &rhs.kind {
                Kind::Number(limit) => chart.thresholds.extend(left.map(|series| Threshold {
                    series,
                    value: *limit,
                    gate: id.to_string(),
                    kind,
                })),
                Kind::Metric { .. } => {}
                _ if rhs.metrics().is_empty() => {}
                _ => {
                    add(&mut chart, format!("limit {rhs}"), rhs, true);
                }
            }
        }
        out.push(chart);
    }
    out
}

/// The series each gate's sparkline draws, by gate id: the line its gate chart compares
/// first (the canary, or the ratio), else the series its fixed limit sits on, with that limit.
/// Gates over PromQL or flags alone have none.
pub fn sparklines(plan: &Plan) -> BTreeMap<String, (String, Option<f64>)> {
    let mut out = BTreeMap::new();
    for chart in gate_charts(plan)
        .into_iter()
        .filter(|c| c.kind == LimitKind::Gate)
    {
        if let Some(line) = chart.lines.first() {
            let limit = chart.thresholds.first().map(|t| t.value);
            out.insert(chart.gate, (line.id.clone(), limit));
        }
    }
    for t in thresholds(plan)
        .into_iter()
        .filter(|t| t.kind == LimitKind::Gate)
    {
        out.entry(t.gate).or_insert((t.series, Some(t.value)));
    }
    out
}

/// What one step of the chart read, so a line's expression can be evaluated at that step.
pub(super) struct StepValues<'a> {
    pub(super) reads: &'a [(MetricRead, Vec<Point>)],
    pub(super) index: usize,
}

impl MetricSource for StepValues<'_> {
    fn aggregate(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        _window: Millis,
        _at: Millis,
    ) -> Option<f64> {
        let (_, points) = self.reads.iter().find(|(r, _)| {
            r.metric == metric && &r.selector == selector && &r.aggregate == aggregate
        })?;
        points.get(self.index)?.v
    }
}

/// The series of a gate chart over `[from, to]`: each metric per step exactly as the metric
/// charts compute it, and each derived line evaluated from those values step by step, so the
/// limit at a step is the limit the step's own values set.
pub fn gate_series(
    chart: &GateChart,
    store: &MetricStore,
    from: Millis,
    to: Millis,
    step: Millis,
) -> Vec<Series> {
    let mut reads: Vec<(MetricRead, Vec<Point>)> = Vec::new();
    for line in &chart.lines {
        for read in line.expr.metrics() {
            if reads.iter().all(|(r, _)| r != &read) {
                let points = store.series(
                    &read.metric,
                    &read.selector,
                    &read.aggregate,
                    from,
                    to,
                    step,
                );
                reads.push((read, points));
            }
        }
    }
    let steps: Vec<Millis> = reads
        .first()
        .map(|(_, points)| points.iter().map(|p| p.t).collect())
        .unwrap_or_default();
    let no_flags = BTreeMap::new();
    let no_stage = expr::StageMemory::default();
    chart
        .lines
        .iter()
        .map(|line| Series {
            id: line.id.clone(),
            label: line.label.clone(),
            unit: chart.unit.clone(),
            points: steps
                .iter()
                .enumerate()
                .map(|(index, &t)| {
                    let source = StepValues {
                        reads: &reads,
                        index,
                    };
                    let cx = EvalContext {
                        source: &source,
                        window: step,
                        at: t + step,
                        flags: &no_flags,
                        stage: &no_stage,
                        split: None,
                    };
                    Point {
                        t,
                        v: expr::value(&line.expr, &cx),
                    }
                })
                .collect(),
        })
        .collect()
}
