//! Which charts a plan gets, what each draws, and where its gates' thresholds lie: latency
//! percentiles, mode mix as a stacked area, each ratio (error rate, cache hit) as a line, and a
//! generic chart for anything else, and a chart per relative gate (canary against baseline)
//! with the lines it compares and its moving limit. Pure, so the app only draws what this
//! decides.

pub mod labels;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::expr::{self, ArithOp, CmpOp, EvalContext, Expr, Kind, MetricRead};
use crate::plan::Plan;
use crate::query::{Aggregate, MetricKind, MetricSource, Selector};
use crate::series::{Point, Series};
use crate::time::Millis;
use crate::window::MetricStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Style {
    /// One line per series.
    Lines,
    /// Shares stacked to 100%.
    StackedArea,
}

/// A horizontal line at a gate's limit or a trigger's line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The series it applies to, e.g. `latency_ms.p95`.
    pub series: String,
    /// In the series' own unit (ratios 0..1).
    pub value: f64,
    /// The gate or trigger it comes from.
    pub gate: String,
    /// What crossing it means: a gate's limit, or a line past which a trigger alerts or
    /// kills (once it has been past it for the trigger's `for`).
    #[serde(default)]
    pub kind: LimitKind,
}

/// Ordered by gravity: gate < alert < kill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    #[default]
    Gate,
    Alert,
    Kill,
}

/// Every gate, then every trigger, of `plan`: `(id, title, expression, what crossing it means)`.
fn limit_sources(plan: &Plan) -> impl Iterator<Item = (&str, &str, &str, LimitKind)> {
    use crate::plan::TriggerAction;
    let gates = plan.gates.iter().map(|g| {
        (
            g.id.as_str(),
            g.title.as_str(),
            g.expr.as_str(),
            LimitKind::Gate,
        )
    });
    let triggers = plan.triggers.iter().map(|t| {
        let kind = match t.action {
            TriggerAction::Alert => LimitKind::Alert,
            TriggerAction::Kill => LimitKind::Kill,
        };
        (t.id.as_str(), t.title.as_str(), t.expr.as_str(), kind)
    });
    gates.chain(triggers)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartSpec {
    /// Stable id (the metric's), used in test ids.
    pub id: String,
    pub title: String,
    pub style: Style,
    /// Series ids in the frame, drawn in this order.
    pub series: Vec<String>,
    /// `ms`, `%` (ratios, drawn as percentages), or the metric's unit.
    pub unit: String,
    pub thresholds: Vec<Threshold>,
    /// What the legend calls each series, in `series` order.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Series drawn dashed as limits that move with time (`1.10 * p95(baseline)`).
    #[serde(default)]
    pub limits: Vec<String>,
}

/// The suffix of the frame series an aggregate reads, when the frame carries one.
fn series_suffix(aggregate: &Aggregate) -> Option<String> {
    match aggregate {
        Aggregate::Quantile(q) => {
            let name = format!("p{}", (q * 100.0).round());
            ["p50", "p95", "p99"]
                .contains(&name.as_str())
                .then_some(name)
        }
        Aggregate::Rate => Some("rate".into()),
        Aggregate::Share(value) => Some(value.clone()),
        Aggregate::Sum => Some("sum".into()),
        Aggregate::Last => Some("last".into()),
        _ => None,
    }
}

/// Limits the plan's gates and triggers set on single series: `p95(latency_ms) <= 700ms`
/// puts a line at 700 on `latency_ms.p95`. Gates come first, then alert triggers, then kill
/// triggers, so the gravest line is drawn on top where two coincide. Comparisons against other
/// metrics (canary vs baseline) and limits on one variant are drawn on the gate's own chart
/// ([`gate_charts`]).
pub fn thresholds(plan: &Plan) -> Vec<Threshold> {
    let mut sources: Vec<_> = limit_sources(plan).collect();
    // Stable: gates, then alerts, then kills, each in plan order.
    sources.sort_by_key(|&(_, _, _, kind)| kind);
    let mut out = Vec::new();
    for (id, _, text, kind) in sources {
        let Ok(e) = expr::parse(text) else {
            continue;
        };
        e.visit(&mut |node| {
            let Kind::Cmp(op, lhs, rhs) = &node.kind else {
                return;
            };
            if matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return;
            }
            let (
                Kind::Metric {
                    metric,
                    aggregate,
                    selector,
                },
                Some(limit),
            ) = (&lhs.kind, constant(rhs))
            else {
                return;
            };
            // A limit on one variant belongs on that gate's own chart, not on the chart of
            // every event.
            if !selector.is_empty() {
                return;
            }
            if let Some(suffix) = series_suffix(aggregate) {
                out.push(Threshold {
                    series: format!("{metric}.{suffix}"),
                    value: limit,
                    gate: id.to_string(),
                    kind,
                });
            }
        });
    }
    out
}

/// The number an expression that reads no metric comes to: `700ms`, or `2 * 300ms`.
fn constant(e: &Expr) -> Option<f64> {
    if let Kind::Number(n) = e.kind {
        return Some(n);
    }
    if !e.metrics().is_empty() {
        return None;
    }
    let no_flags = BTreeMap::new();
    let nothing = StepValues {
        reads: &[],
        index: 0,
    };
    let cx = EvalContext {
        source: &nothing,
        window: 0,
        at: 0,
        flags: &no_flags,
    };
    expr::value(e, &cx)
}

/// The charts for `plan`, latency first, in the order a war room reads them.
pub fn charts(plan: &Plan) -> Vec<ChartSpec> {
    let limits = thresholds(plan);
    let mut ranked: Vec<(u8, ChartSpec)> = Vec::new();
    for m in &plan.metrics {
        let unit = m.unit.clone().unwrap_or_default();
        let (rank, title, style, series, unit) = match m.kind {
            MetricKind::Distribution => (
                if unit == "ms" { 0 } else { 4 },
                if unit == "ms" {
                    format!("{} (p50, p95, p99)", m.title)
                } else {
                    format!("{} (p50, p95)", m.title)
                },
                Style::Lines,
                if unit == "ms" {
                    vec!["p50", "p95", "p99"]
                } else {
                    vec!["p50", "p95"]
                }
                .into_iter()
                .map(|s| format!("{}.{s}", m.id))
                .collect(),
                unit,
            ),
            MetricKind::Category => (
                1,
                format!("{} mix", m.title),
                Style::StackedArea,
                m.values.iter().map(|v| format!("{}.{v}", m.id)).collect(),
                "%".to_string(),
            ),
            MetricKind::Ratio => (
                if m.id.contains("error") { 2 } else { 3 },
                m.title.clone(),
                Style::Lines,
                vec![format!("{}.rate", m.id)],
                "%".to_string(),
            ),
            MetricKind::Counter => (
                5,
                format!("{} per 10 s", m.title),
                Style::Lines,
                vec![format!("{}.sum", m.id)],
                "count".to_string(),
            ),
            MetricKind::Gauge => (
                5,
                m.title.clone(),
                Style::Lines,
                vec![format!("{}.last", m.id)],
                unit,
            ),
        };
        let thresholds = limits
            .iter()
            .filter(|t| series.contains(&t.series))
            .cloned()
            .collect();
        let labels = series
            .iter()
            .map(|id| id.rsplit('.').next().unwrap_or(id).to_string())
            .collect();
        ranked.push((
            rank * 2,
            ChartSpec {
                id: m.id.clone(),
                title,
                style,
                series,
                unit,
                thresholds,
                labels,
                limits: Vec::new(),
            },
        ));
    }
    // Each gate's chart right after the group of charts its first metric belongs to.
    for gate in gate_charts(plan) {
        let rank = ranked
            .iter()
            .find(|(_, c)| Some(&c.id) == gate.metric.as_ref())
            .map_or(u8::MAX, |(rank, _)| rank + 1);
        ranked.push((rank, gate.spec()));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, c)| c).collect()
}

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
    /// `ms`, `%` or the metric's unit, as [`ChartSpec::unit`].
    pub unit: String,
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
fn read_label(read: &MetricRead) -> String {
    let mut words: Vec<String> = read.selector.values().cloned().collect();
    words.push(match &read.aggregate {
        Aggregate::Share(value) => value.clone(),
        other => other.name(),
    });
    words.join(" ")
}

/// The chart unit of an aggregate over a metric of `kind` with `unit`.
fn read_unit(aggregate: &Aggregate, kind: Option<MetricKind>, unit: &str) -> String {
    match (aggregate, kind) {
        (Aggregate::Rate | Aggregate::Share(_), _) => "%".into(),
        (Aggregate::Count, _) | (Aggregate::Sum, Some(MetricKind::Counter)) => "count".into(),
        _ => unit.into(),
    }
}

/// The chart unit of a numeric expression: a metric's, kept through scaling and sums, and a
/// share (`%`) when one quantity is divided by another of the same unit. `None` for a plain
/// number, which takes the unit of whatever it is compared with.
fn expr_unit(plan: &Plan, e: &Expr) -> Option<String> {
    match &e.kind {
        Kind::Metric {
            aggregate, metric, ..
        } => {
            let m = plan.metrics.iter().find(|m| &m.id == metric);
            Some(read_unit(
                aggregate,
                m.map(|m| m.kind),
                m.and_then(|m| m.unit.as_deref()).unwrap_or_default(),
            ))
        }
        Kind::Neg(a) => expr_unit(plan, a),
        Kind::Arith(op, a, b) => match (op, expr_unit(plan, a), expr_unit(plan, b)) {
            (ArithOp::Div, Some(x), Some(y)) if x == y => Some("%".into()),
            (_, x, y) => x.or(y),
        },
        _ => None,
    }
}

/// The unit of an expression (a comparison's left side), if it reads a metric of `plan`:
/// `ms`, `%`, `count`, or the metric's own.
pub fn unit_of(plan: &Plan, e: &Expr) -> Option<String> {
    expr_unit(plan, e).filter(|u| !u.is_empty())
}

/// Whether a comparison needs a chart of its own: it compares metrics with each other, limits
/// one variant, or limits arithmetic over metrics (`sum(ok) / sum(reads) >= 85%`). PromQL is
/// charted by Prometheus, and `==`/`!=` have no line to draw.
fn needs_gate_chart(op: CmpOp, lhs: &Expr, rhs: &Expr) -> bool {
    let mut promql = false;
    for side in [lhs, rhs] {
        side.visit(&mut |n| promql |= matches!(n.kind, Kind::PromQl(_)));
    }
    let (left, right) = (lhs.metrics(), rhs.metrics());
    let selected = left.iter().chain(&right).any(|r| !r.selector.is_empty());
    let derived = !left.is_empty() && !matches!(lhs.kind, Kind::Metric { .. });
    !matches!(op, CmpOp::Eq | CmpOp::Ne)
        && !promql
        && ((!left.is_empty() && !right.is_empty()) || selected || derived)
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
            if let Kind::Cmp(op, lhs, rhs) = &node.kind
                && needs_gate_chart(*op, lhs, rhs)
            {
                comparisons.push(((**lhs).clone(), (**rhs).clone()));
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
                        && expr_unit(plan, n).as_deref() == Some(chart.unit.as_str())
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
struct StepValues<'a> {
    reads: &'a [(MetricRead, Vec<Point>)],
    index: usize,
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
    let series_unit = match chart.unit.as_str() {
        "%" => "ratio".to_string(),
        unit => unit.to_string(),
    };
    chart
        .lines
        .iter()
        .map(|line| Series {
            id: line.id.clone(),
            label: line.label.clone(),
            unit: series_unit.clone(),
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

/// A labelled moment on every chart's time axis: a stage change, a kill, an override, an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub at: crate::time::Millis,
    pub label: String,
    /// Kills (by a person or a trigger) are drawn as alarms.
    pub alarm: bool,
}

/// The actions whose audit records put no marker on the charts ([`marker`]), by name: the
/// server leaves them out when asked for markers only.
pub const UNMARKED_ACTIONS: [&str; 3] = ["check", "uncheck", "approve"];

/// The marker an audit record puts on the charts, if it is one that changes what the charts
/// mean or calls attention to them (checks and approvals do neither).
pub fn marker(record: &crate::rollout::AuditRecord) -> Option<Marker> {
    use crate::rollout::Action;
    let stage = || record.after.stage.clone().unwrap_or_default();
    let label = match &record.action {
        Action::Start => format!("start {}", stage()),
        Action::Progress if record.after.phase == crate::rollout::Phase::Completed => {
            "completed".to_string()
        }
        Action::Progress => format!("to {}", stage()),
        Action::Pause => "pause".to_string(),
        Action::Resume => "resume".to_string(),
        Action::Kill if record.actor.role == crate::role::Role::System => {
            format!("kill by {}", record.actor.name)
        }
        Action::Kill => "kill".to_string(),
        Action::Override { gate } => format!("override {gate}"),
        Action::Alert { trigger } => format!("alert {trigger}"),
        Action::PlanChanged => "plan changed".to_string(),
        Action::Check { .. } | Action::Uncheck { .. } | Action::Approve => return None,
    };
    Some(Marker {
        at: record.at,
        label,
        alarm: matches!(
            record.action,
            Action::Kill | Action::Alert { .. } | Action::PlanChanged
        ),
    })
}

/// The three charts a wall screen shows: latency, the mode mix, the error rate (whichever the
/// plan has), filled up with the next charts in order.
pub fn wall(plan: &Plan) -> Vec<ChartSpec> {
    let all = charts(plan);
    let picks = [
        all.iter().position(|c| c.unit == "ms"),
        all.iter().position(|c| c.style == Style::StackedArea),
        all.iter().position(|c| c.id.contains("error")),
    ];
    let mut chosen: Vec<usize> = picks.into_iter().flatten().collect();
    for i in 0..all.len() {
        if chosen.len() >= 3 {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|i| all[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spiralogic() -> Plan {
        let text = include_str!("../../plans/spiralogic.toml");
        crate::plan::parse("spiralogic.toml", text).unwrap()
    }

    #[test]
    fn every_metric_gets_a_chart_latency_first_and_the_mix_stacked() {
        let charts = charts(&spiralogic());
        let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "latency_ms",
                "first_token_ms",
                "mode",
                "error",
                "cache_hit",
                "quality",
                "gate-quality"
            ]
        );
        let mode = &charts[2];
        assert_eq!(mode.style, Style::StackedArea);
        assert_eq!(mode.series, ["mode.full", "mode.lite", "mode.fallback"]);
        assert_eq!(mode.unit, "%");
        assert_eq!(
            charts[0].series,
            ["latency_ms.p50", "latency_ms.p95", "latency_ms.p99"]
        );
    }

    #[test]
    fn stage_changes_kills_overrides_and_alerts_mark_the_charts_checks_do_not() {
        use crate::rollout::{Action, Actor, AuditRecord, Phase, StateSummary};
        let summary = |phase, stage: Option<&str>| StateSummary {
            phase,
            stage: stage.map(str::to_string),
            traffic: 10.0,
        };
        let record = |action, role| AuditRecord {
            at: 42,
            actor: Actor {
                name: "trigger:error-spike".into(),
                role,
            },
            action,
            reason: None,
            before: summary(Phase::Running, Some("canary")),
            after: summary(Phase::Running, Some("beta")),
        };
        use crate::role::Role;
        let progress = marker(&record(Action::Progress, Role::Operator)).unwrap();
        assert_eq!(
            (progress.at, progress.label.as_str(), progress.alarm),
            (42, "to beta", false)
        );
        let kill = marker(&record(Action::Kill, Role::System)).unwrap();
        assert_eq!(
            (kill.label.as_str(), kill.alarm),
            ("kill by trigger:error-spike", true)
        );
        let check = Action::Check {
            list: "l".into(),
            item: "i".into(),
        };
        assert_eq!(marker(&record(check, Role::Operator)), None);
        assert_eq!(marker(&record(Action::Approve, Role::Lead)), None);
        let alert = Action::Alert {
            trigger: "error-spike".into(),
        };
        let alert = marker(&record(alert, Role::System)).unwrap();
        assert_eq!(
            (alert.label.as_str(), alert.alarm),
            ("alert error-spike", true)
        );
        // The server's "markers only" filter names exactly the actions that mark nothing.
        let every = [
            Action::Start,
            Action::Progress,
            Action::Pause,
            Action::Resume,
            Action::Kill,
            Action::Approve,
            Action::Override { gate: "g".into() },
            Action::Check {
                list: "l".into(),
                item: "i".into(),
            },
            Action::Uncheck {
                list: "l".into(),
                item: "i".into(),
            },
            Action::Alert {
                trigger: "t".into(),
            },
            Action::PlanChanged,
        ];
        for action in every {
            let unmarked = UNMARKED_ACTIONS.contains(&action.name());
            let role = Role::System;
            assert_eq!(
                marker(&record(action.clone(), role)).is_none(),
                unmarked,
                "{action:?}"
            );
        }
    }

    #[test]
    fn a_limit_written_as_arithmetic_is_drawn_at_its_value() {
        let pags = plan(
            "pags-cutover.toml",
            include_str!("../../plans/pags-cutover.toml"),
        );
        let lines: Vec<(String, f64, String, LimitKind)> = charts(&pags)
            .iter()
            .flat_map(|c| c.thresholds.clone())
            .filter(|t| t.gate == "latency")
            .map(|t| (t.series, t.value, t.gate, t.kind))
            .collect();
        // `p95(latency_ms) > 2 * 300ms`
        assert_eq!(
            lines,
            [(
                "latency_ms.p95".to_string(),
                600.0,
                "latency".to_string(),
                LimitKind::Kill
            )]
        );
    }

    #[test]
    fn the_wall_shows_latency_mix_and_errors() {
        let ids: Vec<String> = wall(&spiralogic()).into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["latency_ms", "mode", "error"]);
    }

    fn plan(file: &str, text: &str) -> Plan {
        crate::plan::parse(file, text).unwrap()
    }

    fn lens() -> Plan {
        plan("lens-v1.toml", include_str!("../../plans/lens-v1.toml"))
    }

    #[test]
    fn a_canary_against_baseline_gate_gets_its_own_chart_with_the_moving_limit() {
        let all = charts(&lens());
        let at = all
            .iter()
            .position(|c| c.id == "gate-e2e-vs-baseline")
            .expect("a chart for the relative gate");
        // With the latency charts, before the error and cache charts.
        let latency = all.iter().position(|c| c.id == "latency_ms").unwrap();
        assert!(latency < at);
        assert!(all[latency..at].iter().all(|c| c.unit == "ms"));
        assert!(all.iter().any(|c| c.id == "gate-tail-latency"));
        let chart = &all[at];
        assert_eq!(chart.unit, "ms");
        assert_eq!(
            chart.labels,
            [
                "canary p95",
                "baseline p95",
                "limit 1.1 * p95(latency_ms{variant=\"baseline\"})"
            ]
        );
        assert_eq!(chart.limits, [chart.series[2].clone()]);
        assert!(chart.thresholds.is_empty());
    }

    #[test]
    fn a_limit_on_one_variant_is_drawn_on_that_variant_not_on_every_event() {
        let hal9 = plan(
            "hal9-shadow.toml",
            include_str!("../../plans/hal9-shadow.toml"),
        );
        let all = charts(&hal9);
        let error = all.iter().find(|c| c.id == "error").unwrap();
        assert!(error.thresholds.is_empty(), "{:?}", error.thresholds);
        let gate = all
            .iter()
            .find(|c| c.labels == ["baseline rate"])
            .expect("the baseline error gate's chart");
        assert_eq!(gate.unit, "%");
        assert_eq!(gate.thresholds.len(), 1);
        assert_eq!(gate.thresholds[0].series, gate.series[0]);
        assert_eq!(gate.thresholds[0].value, 0.01);
        // Shadow against baseline, p50 and p99: two lines and a limit each.
        let p99 = all
            .iter()
            .find(|c| c.labels.first().is_some_and(|l| l == "shadow p99"))
            .unwrap();
        assert_eq!(p99.labels[1], "baseline p99");
        assert_eq!(p99.limits.len(), 1);
    }

    #[test]
    fn a_limit_on_a_ratio_of_counters_gets_a_chart_of_the_ratio_in_percent() {
        let mirror = plan(
            "semantic-mirror.toml",
            include_str!("../../plans/semantic-mirror.toml"),
        );
        let gates = gate_charts(&mirror);
        let success = gates
            .iter()
            .find(|c| {
                c.lines
                    .iter()
                    .any(|l| l.label.starts_with("sum(queries_successful) /"))
            })
            .expect("the success-rate gate's chart");
        assert_eq!(success.unit, "%");
        // The counts behind the ratio would flatten it: only the ratio is drawn.
        assert_eq!(success.lines.len(), 1);
        // The gate's limit, and the alert trigger's line on the same ratio.
        let lines: Vec<(f64, &str, LimitKind)> = success
            .thresholds
            .iter()
            .map(|t| (t.value, t.gate.as_str(), t.kind))
            .collect();
        assert_eq!(lines[0].2, LimitKind::Gate);
        assert_eq!(lines[0].0, 0.85);
        assert_eq!(lines[1..], [(0.6, "hit-rate-low", LimitKind::Alert)]);
        // `last(active_contexts) > 0` is a fixed line on the metric's own chart.
        assert!(
            gates
                .iter()
                .all(|c| c.metric.as_deref() != Some("active_contexts"))
        );
        let ids: Vec<String> = gates.iter().map(|c| c.spec().id).collect();
        assert_eq!(
            ids,
            ["gate-hit-rate", "gate-denial-rate", "gate-rate-limit"]
        );
    }

    #[test]
    fn a_trigger_on_one_variant_gets_its_line_drawn_somewhere() {
        let hal9 = plan(
            "hal9-shadow.toml",
            include_str!("../../plans/hal9-shadow.toml"),
        );
        type Lines = Vec<(String, f64, LimitKind)>;
        let summary = |p: &Plan| -> Vec<(String, Vec<String>, Lines)> {
            gate_charts(p)
                .into_iter()
                .filter(|c| c.kind != LimitKind::Gate)
                .map(|c| {
                    (
                        c.spec().id,
                        c.lines.iter().map(|l| l.label.clone()).collect(),
                        c.thresholds
                            .iter()
                            .map(|t| (t.gate.clone(), t.value, t.kind))
                            .collect(),
                    )
                })
                .collect()
        };
        // `p95(latency_ms{variant="baseline"}) > 500ms when shadow_mode`: no gate draws the
        // baseline p95, so the kill line gets a chart of its own.
        assert_eq!(
            summary(&hal9),
            [(
                "trigger-production-impact".to_string(),
                vec!["baseline p95".to_string()],
                vec![("production-impact".to_string(), 500.0, LimitKind::Kill)]
            )]
        );
        assert_eq!(
            summary(&lens()),
            [(
                "trigger-canary-errors".to_string(),
                vec!["canary rate".to_string()],
                vec![("canary-errors".to_string(), 0.03, LimitKind::Alert)]
            )]
        );
        // Their series are in the charts the page shows, and sparklines stay the gates'.
        let ids: Vec<String> = charts(&hal9).into_iter().map(|c| c.id).collect();
        assert!(
            ids.contains(&"trigger-production-impact".to_string()),
            "{ids:?}"
        );
        assert!(!sparklines(&hal9).contains_key("production-impact"));
    }

    #[test]
    fn every_gate_over_metrics_has_a_sparkline_on_the_series_it_judges() {
        let spark = sparklines(&spiralogic());
        assert_eq!(
            spark.get("p95-latency"),
            Some(&("latency_ms.p95".to_string(), Some(700.0)))
        );
        assert_eq!(spark["quality"].0, "gate:quality.0");
        assert_eq!(spark["quality"].1, None, "a moving limit has no fixed line");
        for plan in [spiralogic(), lens()] {
            let series: Vec<String> = charts(&plan).into_iter().flat_map(|c| c.series).collect();
            for (gate, (id, _)) in sparklines(&plan) {
                assert!(series.contains(&id), "{gate}: {id} is on no chart");
            }
        }
    }

    fn variant_store() -> MetricStore {
        MetricStore::new(
            crate::window::StoreConfig::default(),
            [("latency_ms".to_string(), MetricKind::Distribution)],
        )
    }

    fn record(store: &mut MetricStore, variant: &str, ts: Millis, v: f64) {
        let sample = crate::window::Sample {
            metric: "latency_ms".into(),
            labels: [("variant".to_string(), variant.to_string())].into(),
            ts,
            value: crate::window::SampleValue::Number(v),
        };
        store.record(&sample, ts).unwrap();
    }

    const T0: Millis = 1_700_000_000_000;
    const STEP: Millis = 10_000;

    proptest::proptest! {
        /// Each line of the gate chart is its variant's own series, and the limit at every
        /// step is 1.10 times the baseline's value at that step: a gap where the baseline
        /// has none, never zero.
        #[test]
        fn gate_lines_are_the_variants_and_the_limit_follows_the_baseline(
            steps in proptest::collection::vec(
                (proptest::collection::vec(1.0f64..5_000.0, 0..20),
                 proptest::collection::vec(1.0f64..5_000.0, 0..20)),
                1..12,
            )
        ) {
            let mut store = variant_store();
            for (i, (canary, baseline)) in steps.iter().enumerate() {
                let ts = T0 + i as Millis * STEP;
                for v in canary { record(&mut store, "canary", ts, *v); }
                for v in baseline { record(&mut store, "baseline", ts, *v); }
            }
            let chart = gate_charts(&lens())
                .into_iter()
                .find(|c| c.gate == "e2e-vs-baseline")
                .unwrap();
            let to = T0 + (steps.len() as Millis - 1) * STEP;
            let series = gate_series(&chart, &store, T0, to, STEP);
            let variant = |name: &str| {
                let selector: Selector = [("variant".to_string(), name.to_string())].into();
                store.series("latency_ms", &selector, &Aggregate::Quantile(0.95), T0, to, STEP)
            };
            proptest::prop_assert_eq!(&series[0].points, &variant("canary"));
            proptest::prop_assert_eq!(&series[1].points, &variant("baseline"));
            proptest::prop_assert_eq!(series[2].points.len(), steps.len());
            for (limit, (baseline, (_, values))) in series[2]
                .points
                .iter()
                .zip(series[1].points.iter().zip(&steps))
            {
                proptest::prop_assert_eq!(baseline.v.is_none(), values.is_empty());
                proptest::prop_assert_eq!(limit.v, baseline.v.map(|b| 1.1 * b));
            }
        }
    }

    #[test]
    fn gate_and_trigger_limits_become_lines_on_the_series_they_judge() {
        let charts = charts(&spiralogic());
        let lines = |chart: &ChartSpec| -> Vec<(String, f64, String, LimitKind)> {
            chart
                .thresholds
                .iter()
                .map(|t| (t.series.clone(), t.value, t.gate.clone(), t.kind))
                .collect()
        };
        let line = |series: &str, value, source: &str, kind| {
            (series.to_string(), value, source.to_string(), kind)
        };
        // Gates, then the alert, then the kill drawn last (on top).
        assert_eq!(
            lines(&charts[0]),
            [
                line("latency_ms.p95", 700.0, "p95-latency", LimitKind::Gate),
                line("latency_ms.p50", 350.0, "p50-latency", LimitKind::Gate),
                line("latency_ms.p95", 700.0, "latency-budget", LimitKind::Alert),
                line("latency_ms.p95", 900.0, "p95-breach", LimitKind::Kill),
            ]
        );
        let mode = &charts[2];
        assert_eq!(
            lines(mode),
            [
                line("mode.fallback", 0.03, "fallback-rate", LimitKind::Gate),
                line("mode.fallback", 0.1, "fallback-storm", LimitKind::Kill),
            ]
        );
        let cache = &charts[4];
        assert_eq!(cache.thresholds[0].value, 0.4);
        // `mean(quality{variant="canary"}) >= mean(quality{variant="baseline"}) - 2%` has no
        // fixed line: it moves with the baseline, on the gate's own chart.
        assert!(charts[5].thresholds.is_empty());
        assert_eq!(charts[6].limits.len(), 1);
    }
}
