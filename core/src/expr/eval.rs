//! Evaluating an expression over a metric source at a time. Three-valued: a value can be
//! missing ("no data"), which propagates and never makes a condition true; a `when` guard
//! that is false makes the whole expression "not applicable".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ArithOp, CmpOp, Expr, Kind, LogicOp};
use crate::flag::FlagValue;
use crate::query::MetricSource;
use crate::time::Millis;

/// Everything evaluation reads: the metrics, the window, the time, the current stage's flags,
/// and what the current stage has carried since it was entered.
pub struct EvalContext<'a> {
    pub source: &'a dyn MetricSource,
    pub window: Millis,
    pub at: Millis,
    pub flags: &'a BTreeMap<String, FlagValue>,
    pub stage: &'a StageMemory,
    /// The canary's share of the compared events the current stage implies (its traffic),
    /// when the plan checks the split: comparisons read "not yet known" while it is off.
    pub split: Option<f64>,
}

/// What an evaluation remembers of the current stage: when it was entered, the `at_entry`
/// baselines captured then, and how often each trigger fired in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageMemory {
    /// When the stage these values belong to was entered (`None` before start).
    pub entered_at: Option<Millis>,
    /// `at_entry` values by [`baseline_key`].
    pub baselines: BTreeMap<String, f64>,
    /// Firings per trigger id.
    pub fired: BTreeMap<String, u32>,
}

/// Which captured baseline an `at_entry(inner)` over `window` reads.
pub fn baseline_key(window: Millis, inner: &Expr) -> String {
    format!("{window}|{inner}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    NoData {
        reason: String,
    },
    /// A comparison has not concluded: never a pass, never a failure.
    NotYetKnown {
        reason: String,
    },
    NotApplicable,
}

/// One comparison as a person reads it on the gate board: `p95(latency_ms) = 612 <= 700`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmpTrace {
    pub left: String,
    pub left_value: Option<f64>,
    pub op: String,
    pub right: String,
    pub right_value: Option<f64>,
    /// `None` when a side had no data.
    pub holds: Option<bool>,
    /// What the values are in (`ms`, `%` for ratios 0..1, a metric's unit), when the left
    /// side reads a metric of the plan: the gate board shows `0.4% <= 0.75%`, not `0.0040`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<crate::unit::Unit>,
    /// For a sequential comparison: the interval, the samples and when a decision may come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SeqTrace>,
}

/// A sequential comparison as the gate board shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqTrace {
    #[serde(flatten)]
    pub comparison: crate::sequential::Comparison,
    pub alpha: f64,
    /// How long the comparison has read (since the stage was entered).
    pub since: Millis,
    /// About how much longer to a decision at the current event rate, when it can be said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_in: Option<Millis>,
    /// Why the split of events between the arms is not what the stage implies, if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_off: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub outcome: Outcome,
    pub comparisons: Vec<CmpTrace>,
}

#[derive(Debug, Clone, PartialEq)]
enum V {
    Num(f64),
    Bool(bool),
    NoData(String),
    /// A condition not yet decided (a comparison still gathering evidence).
    Pending(String),
    NotApplicable,
}

fn number(v: f64, what: impl FnOnce() -> String) -> V {
    if v.is_finite() {
        V::Num(v)
    } else {
        V::NoData(what())
    }
}

/// Label values an `any`/`all` ranges over at most (a metric keeps 64 label sets anyway).
const MAX_VALUES: usize = 64;
/// Values whose comparisons the trace keeps: the ones that decide, a few.
const TRACED_VALUES: usize = 3;

/// `body` with every metric read narrowed to `label = value`.
fn narrow(body: &Expr, label: &str, value: &str) -> Expr {
    let mut out = body.clone();
    fn walk(e: &mut Expr, label: &str, value: &str) {
        match &mut e.kind {
            Kind::Metric { selector, .. } => {
                selector.insert(label.to_string(), value.to_string());
            }
            Kind::Neg(a) | Kind::Not(a) | Kind::AtEntry(a) | Kind::Slope(a) => {
                walk(a, label, value)
            }
            Kind::Quantified { body, .. } => walk(body, label, value),
            Kind::Compare {
                canary, baseline, ..
            } => {
                walk(canary, label, value);
                walk(baseline, label, value);
            }
            Kind::Arith(_, a, b) | Kind::Cmp(_, a, b) | Kind::Logic(_, a, b) | Kind::When(a, b) => {
                walk(a, label, value);
                walk(b, label, value);
            }
            _ => {}
        }
    }
    walk(&mut out, label, value);
    out
}

/// `all(label, body)` / `any(label, body)`: `body` for each value of `label` with samples in
/// the window. The trace keeps the comparisons of the values that decide (those failing an
/// `all`, those passing an `any`), so the gate's "why" names them.
fn quantified(
    e: &Expr,
    all: bool,
    label: &str,
    body: &Expr,
    cx: &EvalContext<'_>,
    trace: &mut Vec<CmpTrace>,
) -> V {
    let mut values = std::collections::BTreeSet::new();
    for read in body.metrics() {
        let at = cx.at.saturating_sub(read.offset);
        values.extend(
            cx.source
                .label_values(&read.metric, &read.selector, label, cx.window, at),
        );
    }
    if values.is_empty() {
        return V::NoData(format!(
            "{e}: no value of {label} has samples in the window"
        ));
    }
    let (mut passed, mut failed, mut missing, mut pending) = (Vec::new(), Vec::new(), None, None);
    for value in values.iter().take(MAX_VALUES) {
        let mut t = Vec::new();
        match eval(&narrow(body, label, value), cx, &mut t) {
            V::Bool(true) => passed.push(t),
            V::Bool(false) => failed.push(t),
            V::NoData(reason) => {
                missing.get_or_insert(reason);
            }
            V::Pending(reason) => {
                pending.get_or_insert((reason, t));
            }
            V::NotApplicable | V::Num(_) => {}
        }
    }
    let keep = |groups: Vec<Vec<CmpTrace>>, trace: &mut Vec<CmpTrace>| {
        trace.extend(groups.into_iter().take(TRACED_VALUES).flatten());
    };
    match (all, passed.is_empty(), failed.is_empty()) {
        (true, _, false) => {
            keep(failed, trace);
            V::Bool(false)
        }
        (false, false, _) => {
            keep(passed, trace);
            V::Bool(true)
        }
        _ if missing.is_some() => V::NoData(missing.unwrap_or_default()),
        _ if pending.is_some() => {
            let (reason, t) = pending.unwrap_or_default();
            trace.extend(t);
            V::Pending(reason)
        }
        (true, false, true) => {
            keep(passed, trace);
            V::Bool(true)
        }
        (false, true, false) => {
            keep(failed, trace);
            V::Bool(false)
        }
        _ => V::NotApplicable,
    }
}

/// `test(canary, baseline, margin)`: the two reads over everything since the stage was
/// entered, compared by a confidence sequence (`crate::sequential`). True or false only when
/// conclusive; otherwise "not yet known", with the interval and samples in the trace.
fn compare(
    e: &Expr,
    test: super::Test,
    (canary, baseline): (&Expr, &Expr),
    (margin, alpha, range): (f64, f64, Option<[f64; 2]>),
    cx: &EvalContext<'_>,
    trace: &mut Vec<CmpTrace>,
) -> V {
    use crate::query::Aggregate;
    use crate::sequential::{self, Finding};
    let Some(entered) = cx.stage.entered_at else {
        // Before the start there is nothing to compare yet: not a problem, not a pass.
        return V::Pending(
            "not yet known: canary is compared with baseline from the stage's entry".to_string(),
        );
    };
    let since = cx.at.saturating_sub(entered).max(1);
    let (Some(c), Some(b)) = (canary.read(), baseline.read()) else {
        return V::NoData(format!("{e} compares something that is not a metric read"));
    };
    let mut tallies = Vec::with_capacity(2);
    for read in [&c, &b] {
        if let Some(reason) = cx.source.unavailable(&read.metric) {
            return V::NoData(format!("{}: {reason}", read.metric));
        }
        match cx.source.tally(&read.metric, &read.selector, since, cx.at) {
            Some(t) if t.count > 0 => tallies.push(t),
            Some(_) => {
                return V::NoData(format!(
                    "no samples for {} since the stage was entered",
                    if tallies.is_empty() { canary } else { baseline }
                ));
            }
            None => {
                return V::NoData(format!(
                    "{}: this source cannot compare event by event",
                    read.metric
                ));
            }
        }
    }
    let (ct, bt) = (&tallies[0], &tallies[1]);
    let Some(comparison) =
        compare_tallies(&c.aggregate, (ct, bt), test.worse(), (margin, alpha, range))
    else {
        return V::NoData(format!(
            "{e}: {} cannot be compared (a mean needs its range)",
            c.aggregate.name()
        ));
    };
    // Sample-ratio mismatch: the arms' events split other than the stage implies (a broken
    // router, a crashing arm dropping events) make any comparison of them meaningless.
    let split_off = cx.split.and_then(|share| {
        let (cn, bn) = (comparison.canary_n, comparison.baseline_n);
        (share > 0.0 && share < 1.0 && sequential::split_is_off(cn, bn, share, alpha)).then(|| {
            format!(
                "traffic split off: canary has {:.1}% of the compared events where the stage implies {:.1}%",
                100.0 * cn as f64 / (cn + bn).max(1) as f64,
                100.0 * share
            )
        })
    });
    let finding = if split_off.is_some() {
        Finding::NotYetKnown
    } else {
        comparison.finding
    };
    let estimate = |t: &sequential::Tally| match &c.aggregate {
        Aggregate::Quantile(q) => t
            .sketch
            .as_ref()
            .and_then(|s| s.quantile(*q).ok().flatten()),
        Aggregate::Rate => Some(t.trues as f64 / t.count.max(1) as f64),
        _ => Some(t.sum / t.count.max(1) as f64),
    };
    let holds = match finding {
        Finding::NotYetKnown => None,
        Finding::Worse => Some(test.asks_worse()),
        Finding::NotWorse => Some(!test.asks_worse()),
    };
    let decision_in = if split_off.is_none() {
        comparison.decision_in(since)
    } else {
        None
    };
    trace.push(CmpTrace {
        left: canary.to_string(),
        left_value: estimate(ct),
        op: test.name().to_string(),
        right: baseline.to_string(),
        right_value: estimate(bt),
        holds,
        unit: None,
        sequential: Some(SeqTrace {
            comparison: sequential::Comparison {
                finding,
                ..comparison
            },
            alpha,
            since,
            decision_in,
            split_off: split_off.clone(),
        }),
    });
    match holds {
        Some(h) => V::Bool(h),
        None => V::Pending(match split_off {
            Some(why) => format!("not yet known ({why})"),
            None => format!("not yet known: {e} has not concluded"),
        }),
    }
}

/// A comparison of two arms' tallies by the aggregate both read: the quantile, the rate or
/// the bounded mean. `None` for an aggregate that cannot be compared, or a mean without its
/// range.
pub fn compare_tallies(
    aggregate: &crate::query::Aggregate,
    (ct, bt): (&crate::sequential::Tally, &crate::sequential::Tally),
    worse: crate::sequential::Worse,
    (margin, alpha, range): (f64, f64, Option<[f64; 2]>),
) -> Option<crate::sequential::Comparison> {
    use crate::query::Aggregate;
    use crate::sequential;
    Some(match aggregate {
        Aggregate::Quantile(q) => sequential::compare_quantiles(ct, bt, *q, worse, margin, alpha),
        Aggregate::Rate => {
            sequential::compare_rates(ct.trues, ct.count, bt.trues, bt.count, worse, margin, alpha)
        }
        Aggregate::Mean => sequential::compare_means(ct, bt, range?, worse, margin, alpha),
        _ => return None,
    })
}

/// Slices of the window a slope is fitted over.
pub const SLOPE_SLICES: i64 = 6;

/// `inner` read over six equal slices of the window, fitted by least squares: its change per
/// minute. At least three slices must have data.
fn slope(e: &Expr, inner: &Expr, cx: &EvalContext<'_>) -> V {
    let slice = cx.window / SLOPE_SLICES;
    if slice <= 0 {
        return V::NoData(format!("{e}: the window is too short to slice"));
    }
    let mut points = Vec::new();
    for i in 0..SLOPE_SLICES {
        let at = cx.at - (SLOPE_SLICES - 1 - i) * slice;
        let sub = EvalContext {
            source: cx.source,
            window: slice,
            at,
            flags: cx.flags,
            stage: cx.stage,
            split: cx.split,
        };
        if let V::Num(v) = eval(inner, &sub, &mut Vec::new()) {
            points.push((at as f64, v));
        }
    }
    if points.len() < 3 {
        return V::NoData(format!(
            "{e}: {} of {SLOPE_SLICES} slices of the window have data (3 needed)",
            points.len()
        ));
    }
    let n = points.len() as f64;
    let (mt, mv) = points
        .iter()
        .fold((0.0, 0.0), |(t, v), (pt, pv)| (t + pt / n, v + pv / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (t, v)| {
        (num + (t - mt) * (v - mv), den + (t - mt) * (t - mt))
    });
    number(num / den * crate::time::MINUTE as f64, || {
        format!("{e} is not a number")
    })
}

fn eval(e: &Expr, cx: &EvalContext<'_>, trace: &mut Vec<CmpTrace>) -> V {
    match &e.kind {
        Kind::Number(n) => V::Num(*n),
        Kind::Bool(b) => V::Bool(*b),
        Kind::Flag(name) => match cx.flags.get(name) {
            Some(FlagValue::Bool(b)) => V::Bool(*b),
            Some(FlagValue::Number(n)) => V::Num(*n),
            Some(FlagValue::Text(t)) => {
                V::NoData(format!("flag {name} is \"{t}\", not true/false"))
            }
            None => V::NoData(format!("flag {name} is not set in this stage")),
        },
        Kind::Metric {
            aggregate,
            metric,
            selector,
            offset,
        } => {
            if let Some(reason) = cx.source.unavailable(metric) {
                return V::NoData(format!("{metric}: {reason}"));
            }
            let at = cx.at.saturating_sub(*offset);
            match cx
                .source
                .aggregate(metric, selector, aggregate, cx.window, at)
            {
                Some(v) => number(v, || format!("{e} is not a number")),
                None => V::NoData(format!("no samples for {e} in the window")),
            }
        }
        Kind::AtEntry(inner) => match cx.stage.baselines.get(&baseline_key(cx.window, inner)) {
            Some(v) => V::Num(*v),
            None if cx.stage.entered_at.is_none() => {
                V::NoData(format!("{e}: the stage has not been entered"))
            }
            None => V::NoData(format!(
                "{e}: no data for {inner} when the stage was entered"
            )),
        },
        Kind::Slope(inner) => slope(e, inner, cx),
        Kind::Quantified { all, label, body } => quantified(e, *all, label, body, cx, trace),
        Kind::Compare {
            test,
            canary,
            baseline,
            margin,
            alpha,
            range,
        } => compare(
            e,
            *test,
            (canary, baseline),
            (*margin, alpha.unwrap_or(super::DEFAULT_ALPHA), *range),
            cx,
            trace,
        ),
        Kind::Fired(trigger) => V::Num(cx.stage.fired.get(trigger).copied().unwrap_or(0) as f64),
        Kind::PromQl(q) => match cx.source.promql(q, cx.at) {
            Ok(Some(v)) => number(v, || "promql returned a non-finite value".into()),
            Ok(None) => V::NoData("promql returned no series".into()),
            Err(message) => V::NoData(format!("promql: {message}")),
        },
        Kind::Neg(a) => match eval(a, cx, trace) {
            V::Num(n) => V::Num(-n),
            other => other,
        },
        Kind::Arith(op, a, b) => match (eval(a, cx, trace), eval(b, cx, trace)) {
            (V::Num(x), V::Num(y)) => match op {
                ArithOp::Add => number(x + y, || format!("{e} overflowed")),
                ArithOp::Sub => number(x - y, || format!("{e} overflowed")),
                ArithOp::Mul => number(x * y, || format!("{e} overflowed")),
                ArithOp::Div if y == 0.0 => V::NoData(format!("{b} is 0 in {e}")),
                ArithOp::Div => number(x / y, || format!("{e} is not a number")),
            },
            (V::NoData(r), _) | (_, V::NoData(r)) => V::NoData(r),
            _ => V::NoData(format!("{e} mixes a condition into arithmetic")),
        },
        Kind::Cmp(op, a, b) => {
            let (left, right) = (eval(a, cx, trace), eval(b, cx, trace));
            let value = |v: &V| if let V::Num(n) = v { Some(*n) } else { None };
            let (l, r) = (value(&left), value(&right));
            let holds = l.zip(r).map(|(x, y)| match op {
                CmpOp::Lt => x < y,
                CmpOp::Le => x <= y,
                CmpOp::Gt => x > y,
                CmpOp::Ge => x >= y,
                CmpOp::Eq => x == y,
                CmpOp::Ne => x != y,
            });
            trace.push(CmpTrace {
                left: a.to_string(),
                left_value: l,
                op: op.to_string(),
                right: b.to_string(),
                right_value: r,
                holds,
                unit: None,
                sequential: None,
            });
            match (holds, left, right) {
                (Some(h), _, _) => V::Bool(h),
                (None, V::NoData(reason), _) | (None, _, V::NoData(reason)) => V::NoData(reason),
                _ => V::NoData(format!("{e} compares something that is not a number")),
            }
        }
        Kind::Not(a) => match eval(a, cx, trace) {
            V::Bool(b) => V::Bool(!b),
            other => other,
        },
        Kind::Logic(op, a, b) => {
            let (x, y) = (eval(a, cx, trace), eval(b, cx, trace));
            // Kleene logic: a definite answer wins over missing data and over a comparison
            // not yet decided; missing data is told before "not yet known".
            match (op, x, y) {
                (LogicOp::And, V::Bool(false), _) | (LogicOp::And, _, V::Bool(false)) => {
                    V::Bool(false)
                }
                (LogicOp::Or, V::Bool(true), _) | (LogicOp::Or, _, V::Bool(true)) => V::Bool(true),
                (_, V::Bool(p), V::Bool(q)) => {
                    V::Bool(if *op == LogicOp::And { p && q } else { p || q })
                }
                (_, V::NoData(r), _) | (_, _, V::NoData(r)) => V::NoData(r),
                (_, V::Pending(r), _) | (_, _, V::Pending(r)) => V::Pending(r),
                _ => V::NoData(format!("{e} combines something that is not a condition")),
            }
        }
        Kind::When(body, guard) => match eval(guard, cx, trace) {
            V::Bool(false) => V::NotApplicable,
            V::Bool(true) => eval(body, cx, trace),
            V::NoData(r) => V::NoData(r),
            V::Pending(r) => V::Pending(r),
            _ => V::NoData(format!("{guard} is not a condition")),
        },
    }
}

/// Evaluates a checked condition.
pub fn evaluate(e: &Expr, cx: &EvalContext<'_>) -> Evaluation {
    let mut comparisons = Vec::new();
    let outcome = match eval(e, cx, &mut comparisons) {
        V::Bool(true) => Outcome::Pass,
        V::Bool(false) => Outcome::Fail,
        V::NoData(reason) => Outcome::NoData { reason },
        V::Pending(reason) => Outcome::NotYetKnown { reason },
        V::NotApplicable => Outcome::NotApplicable,
        V::Num(_) => Outcome::NoData {
            reason: format!("{e} is a number, not a condition"),
        },
    };
    Evaluation {
        outcome,
        comparisons,
    }
}

/// The number a numeric expression (one side of a comparison) comes to, `None` without data.
pub fn value(e: &Expr, cx: &EvalContext<'_>) -> Option<f64> {
    match eval(e, cx, &mut Vec::new()) {
        V::Num(n) => Some(n),
        _ => None,
    }
}
