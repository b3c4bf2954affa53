//! The unit a read or an expression is in, from the plan's metrics.

use crate::expr::{ArithOp, Expr, Kind};
use crate::plan::Plan;
use crate::query::{Aggregate, MetricKind};
use crate::unit::Unit;

/// The unit of an aggregate over a metric of `kind` in `unit`.
pub(super) fn read_unit(aggregate: &Aggregate, kind: Option<MetricKind>, unit: Unit) -> Unit {
    match (aggregate, kind) {
        (Aggregate::Rate | Aggregate::Share(_), _) => Unit::Ratio,
        (Aggregate::Count, _) | (Aggregate::Sum, Some(MetricKind::Counter)) => Unit::Count,
        _ => unit,
    }
}

/// The unit of a numeric expression: a metric's, kept through scaling and sums, and a share
/// when one quantity is divided by another of the same unit. `None` for a plain number,
/// which takes the unit of whatever it is compared with.
pub(super) fn expr_unit(plan: &Plan, e: &Expr) -> Option<Unit> {
    match &e.kind {
        Kind::Metric {
            aggregate, metric, ..
        } => {
            let m = plan.metrics.iter().find(|m| &m.id == metric);
            Some(read_unit(
                aggregate,
                m.map(|m| m.kind),
                m.map(|m| m.unit()).unwrap_or_default(),
            ))
        }
        Kind::Neg(a) => expr_unit(plan, a),
        Kind::Arith(op, a, b) => match (op, expr_unit(plan, a), expr_unit(plan, b)) {
            (ArithOp::Div, Some(x), Some(y)) if x == y => Some(Unit::Ratio),
            (_, x, y) => x.or(y),
        },
        _ => None,
    }
}

/// The unit of an expression (a comparison's left side), if it reads a metric of `plan`.
pub fn unit_of(plan: &Plan, e: &Expr) -> Option<Unit> {
    expr_unit(plan, e).filter(|u| *u != Unit::None)
}
