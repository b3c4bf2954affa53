//! Type-checking an expression against what a plan declares: metrics exist and suit the
//! function applied to them, flags exist, booleans and numbers are not mixed, the whole
//! expression is a condition.

use super::{Expr, ExprError, Kind};
use crate::query::{Aggregate, MetricKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Number,
    Bool,
}

/// What the expression may refer to.
pub trait Resolve {
    /// The kind of a metric, and its declared values for a category metric.
    fn metric(&self, name: &str) -> Option<(MetricKind, Vec<String>)>;
    /// The type of a stage flag, if some stage declares it.
    fn flag(&self, name: &str) -> Option<Type>;
    /// Whether the plan has a trigger with this id.
    fn trigger(&self, id: &str) -> bool;
    /// The values a metric can take, when the plan bounds them (a mean is compared only
    /// within known bounds).
    fn range(&self, _name: &str) -> Option<[f64; 2]> {
        None
    }
    /// Whether the metric's events come to cutover one by one (pushed), rather than as a
    /// number Prometheus computed: only those can be compared event by event.
    fn events(&self, _name: &str) -> bool {
        true
    }
}

/// A comparison's two reads: metric reads of the same aggregate (a quantile, `rate` or a
/// bounded `mean`), pushed event by event, read now.
fn compare(
    e: &Expr,
    test: super::Test,
    canary: &Expr,
    baseline: &Expr,
    margin: f64,
    r: &dyn Resolve,
) -> Result<(), ExprError> {
    let name = test.name();
    let mut aggregates = Vec::new();
    for (side, read) in [("canary", canary), ("baseline", baseline)] {
        let Kind::Metric {
            aggregate,
            metric,
            offset,
            ..
        } = &read.kind
        else {
            return Err(err(
                read,
                format!(
                    "{name}( needs a metric read for the {side}, e.g. p95(latency_ms{{variant=\"{side}\"}})"
                ),
            ));
        };
        type_of(read, r)?;
        if *offset != 0 {
            return Err(err(
                read,
                format!("{name}( compares since the stage was entered: no offset"),
            ));
        }
        if !r.events(metric) {
            return Err(err(
                read,
                format!(
                    "{name}( reads events one by one: \"{metric}\" comes from Prometheus as a number"
                ),
            ));
        }
        match aggregate {
            Aggregate::Quantile(_) | Aggregate::Rate => {}
            Aggregate::Mean if r.range(metric).is_some() => {}
            Aggregate::Mean => {
                return Err(err(
                    read,
                    format!(
                        "{name}( compares a mean only within known bounds: give \"{metric}\" a range, e.g. range = [0, 1]"
                    ),
                ));
            }
            _ => {
                return Err(err(
                    read,
                    format!(
                        "{name}( compares a quantile (p95), a rate or a mean, not {}",
                        aggregate.name()
                    ),
                ));
            }
        }
        aggregates.push((aggregate.clone(), metric.clone()));
    }
    if aggregates[0].0 != aggregates[1].0 {
        return Err(err(
            baseline,
            format!(
                "{name}( compares like with like: {} against {}",
                aggregates[0].0.name(),
                aggregates[1].0.name()
            ),
        ));
    }
    if let Aggregate::Mean = aggregates[0].0
        && r.range(&aggregates[0].1) != r.range(&aggregates[1].1)
    {
        return Err(err(
            baseline,
            format!("{name}( compares means of metrics with the same range"),
        ));
    }
    if canary == baseline {
        return Err(err(
            baseline,
            format!(
                "{name}( compares two different reads: select the canary and the baseline, e.g. {{variant=\"canary\"}}"
            ),
        ));
    }
    if matches!(aggregates[0].0, Aggregate::Quantile(_))
        && test.worse() == crate::sequential::Worse::Below
        && margin >= 1.0
    {
        return Err(err(
            e,
            format!("{name}( a quantile's margin below the baseline must be under 100%"),
        ));
    }
    Ok(())
}

fn err(e: &Expr, message: impl Into<String>) -> ExprError {
    ExprError {
        column: e.column,
        message: message.into(),
    }
}

fn suits(aggregate: &Aggregate, kind: MetricKind) -> bool {
    use MetricKind::*;
    match aggregate {
        Aggregate::Quantile(_)
        | Aggregate::Max
        | Aggregate::Min
        | Aggregate::Mean
        | Aggregate::Last => {
            matches!(kind, Distribution | Gauge | Counter)
        }
        Aggregate::Rate => kind == Ratio,
        Aggregate::Share(_) => kind == Category,
        Aggregate::Count | Aggregate::PerSecond => true,
        Aggregate::Sum => matches!(kind, Distribution | Gauge | Counter),
    }
}

fn type_of(e: &Expr, r: &dyn Resolve) -> Result<Type, ExprError> {
    let number = |x: &Expr, what: &str| -> Result<(), ExprError> {
        match type_of(x, r)? {
            Type::Number => Ok(()),
            Type::Bool => Err(err(
                x,
                format!("{what} needs a number here, not a condition"),
            )),
        }
    };
    let condition = |x: &Expr, what: &str| -> Result<(), ExprError> {
        match type_of(x, r)? {
            Type::Bool => Ok(()),
            Type::Number => Err(err(
                x,
                format!("{what} needs a condition such as x > 0 here, not a number"),
            )),
        }
    };
    match &e.kind {
        Kind::Number(_) | Kind::PromQl(_) => Ok(Type::Number),
        Kind::Bool(_) => Ok(Type::Bool),
        Kind::Flag(name) => r.flag(name).ok_or_else(|| {
            err(e, format!("unknown flag \"{name}\" (metrics are read through a function, e.g. last({name}))"))
        }),
        Kind::Metric { aggregate, metric, .. } => {
            let (kind, values) = r.metric(metric).ok_or_else(|| err(e, format!("unknown metric \"{metric}\"")))?;
            if !suits(aggregate, kind) {
                let hint = match kind {
                    MetricKind::Ratio => "use rate(...)",
                    MetricKind::Category => "use share(..., value)",
                    _ => "use a quantile, mean, max, sum or last",
                };
                let kind = match kind {
                    MetricKind::Distribution => "distribution",
                    MetricKind::Ratio => "ratio",
                    MetricKind::Category => "category",
                    MetricKind::Counter => "counter",
                    MetricKind::Gauge => "gauge",
                };
                return Err(err(e, format!("\"{metric}\" is a {kind} metric: {hint}")));
            }
            if let Aggregate::Share(v) = aggregate
                && !values.contains(v)
            {
                return Err(err(e, format!("\"{v}\" is not a value of {metric}: expected one of {}", values.join(", "))));
            }
            Ok(Type::Number)
        }
        Kind::Neg(a) => number(a, "\"-\"").map(|_| Type::Number),
        Kind::AtEntry(a) => {
            number(a, "at_entry")?;
            let mut nested = false;
            a.visit(&mut |n| nested |= matches!(n.kind, Kind::AtEntry(_) | Kind::Fired(_)));
            if nested {
                return Err(err(a, "at_entry reads metrics at stage entry: no at_entry or fired inside it"));
            }
            if a.metrics().is_empty() {
                return Err(err(a, "at_entry needs a metric read, e.g. at_entry(p95(latency_ms))"));
            }
            Ok(Type::Number)
        }
        Kind::Quantified { all, label, body } => {
            let name = if *all { "all" } else { "any" };
            if type_of(body, r)? != Type::Bool {
                return Err(err(body, format!("{name}({label}, ...) needs a condition, e.g. {name}({label}, p95(latency_ms) <= 300ms)")));
            }
            let reads = body.metrics();
            if reads.is_empty() {
                return Err(err(body, format!("{name}({label}, ...) needs a metric read inside it")));
            }
            if reads.iter().any(|read| read.selector.contains_key(label)) {
                return Err(err(body, format!("{name}({label}, ...) sets {label} for each value itself: select on another label")));
            }
            Ok(Type::Bool)
        }
        Kind::Slope(a) => {
            number(a, "slope")?;
            let mut nested = false;
            a.visit(&mut |n| {
                nested |= matches!(n.kind, Kind::AtEntry(_) | Kind::Fired(_) | Kind::Slope(_))
            });
            if nested || a.metrics().is_empty() {
                return Err(err(
                    a,
                    "slope needs a metric read and no at_entry, fired or slope inside it, e.g. slope(last(queue_depth))",
                ));
            }
            Ok(Type::Number)
        }
        Kind::Compare {
            test,
            canary,
            baseline,
            margin,
            ..
        } => {
            compare(e, *test, canary, baseline, *margin, r)?;
            Ok(Type::Bool)
        }
        Kind::Fired(trigger) => {
            if r.trigger(trigger) {
                Ok(Type::Number)
            } else {
                Err(err(e, format!("unknown trigger \"{trigger}\" in fired(...)")))
            }
        }
        Kind::Arith(_, a, b) => {
            number(a, "arithmetic")?;
            number(b, "arithmetic")?;
            Ok(Type::Number)
        }
        Kind::Cmp(_, a, b) => {
            number(a, "a comparison")?;
            number(b, "a comparison")?;
            Ok(Type::Bool)
        }
        Kind::Not(a) => condition(a, "\"not\"").map(|_| Type::Bool),
        Kind::Logic(_, a, b) => {
            condition(a, "\"and\"/\"or\"")?;
            condition(b, "\"and\"/\"or\"")?;
            Ok(Type::Bool)
        }
        Kind::When(a, b) => {
            condition(a, "a gate")?;
            condition(b, "\"when\"")?;
            Ok(Type::Bool)
        }
    }
}

/// Checks `e` against what the plan declares; a gate or trigger must be a condition.
pub fn check(e: &Expr, r: &dyn Resolve) -> Result<(), ExprError> {
    match type_of(e, r)? {
        Type::Bool => Ok(()),
        Type::Number => Err(err(
            e,
            "this is a number, not a condition: compare it, e.g. p95(latency_ms) <= 700ms",
        )),
    }
}
