//! The gate and trigger expression language.
//!
//! ```text
//! expr     := logic ("when" logic)?            A when B: not applicable while B is false
//! logic    := "not" logic | logic ("and"|"or") logic | compare     (&& || ! also accepted)
//! compare  := sum (("<"|"<="|">"|">="|"=="|"!=") sum)?           (not chained)
//! sum      := product (("+"|"-") product)*
//! product  := unary (("*"|"/") unary)*
//! unary    := "-" unary | atom
//! atom     := NUMBER UNIT? | "true" | "false" | FLAG | call | "(" expr ")"
//! call     := pNN "(" metric ")" | rate(metric) | share(metric, VALUE)
//!           | mean(metric) | count(metric) | sum(metric) | max(metric) | last(metric)
//!           | per_second(metric) | promql("raw PromQL")
//!           | at_entry(sum)                the value when the current stage was entered
//!           | slope(sum)                   its trend over the window, per minute (least squares
//!                                          over six equal slices of the window)
//!           | all(LABEL, expr) | any(LABEL, expr)   expr for every value LABEL takes in the
//!                                          window (each metric read narrowed to it): all hold,
//!                                          or one does; the trace names the values that decide
//!           | fired(TRIGGER | STRING)      firings of a trigger in the current stage
//!           | not_above(read, read, NUMBER ("," NUMBER)?)  canary (first) against baseline,
//!           | not_below(...) | above(...) | below(...)     sequentially since stage entry:
//!                                          a quantile, rate or mean of each, a margin and an
//!                                          optional alpha; true, false or "not yet known"
//! metric   := NAME ("{" NAME "=" STRING ("," NAME "=" STRING)* "}")? ("offset" DURATION)?
//! UNIT     := ms | s | m | h (durations, normalised to ms) | % (x 0.01)
//! ```
//!
//! Bare names are stage flags (`enabled`), metrics are always read through a function, so a
//! typo is an unknown-metric or unknown-flag error rather than a silent zero. Evaluation is
//! three-valued: missing data is `no data`, which never passes.

mod check;
mod eval;
mod parse;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use check::{Resolve, Type, check};
pub use eval::{
    CmpTrace, EvalContext, Evaluation, Outcome, SeqTrace, StageMemory, baseline_key,
    compare_tallies, evaluate, value,
};
pub use parse::parse;

use crate::query::{Aggregate, Selector};
use crate::time::Millis;

/// A parse or type error, at a 1-based character column of the expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ExprError {
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogicOp {
    And,
    Or,
}

/// An expression node and the column it starts at (ignored by equality).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expr {
    pub kind: Kind,
    pub column: usize,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Kind {
    Number(f64),
    Bool(bool),
    Flag(String),
    Metric {
        aggregate: Aggregate,
        metric: String,
        selector: Selector,
        /// Read the window ending this long before the evaluation (`offset 24h`); 0 for now.
        #[serde(default)]
        offset: Millis,
    },
    PromQl(String),
    /// The value of a numeric expression over the window ending when the current stage was
    /// entered: a baseline captured once per stage.
    AtEntry(Box<Expr>),
    /// The trend of a numeric expression over the window, in its units per minute.
    Slope(Box<Expr>),
    /// `all(label, body)` (or `any`): `body` for each value of `label` in the window.
    Quantified {
        all: bool,
        label: String,
        body: Box<Expr>,
    },
    /// `not_above(canary, baseline, margin)` and its kin: two reads of the same kind
    /// compared sequentially over everything since the stage was entered (docs/statistics.md).
    Compare {
        test: Test,
        canary: Box<Expr>,
        baseline: Box<Expr>,
        /// A quantile's fraction (0.1: 10%), or a rate's or mean's difference in its units.
        margin: f64,
        /// The chance of a wrong conclusive verdict over the whole stage (default 5%).
        alpha: Option<f64>,
        /// The bounds of a compared mean's values, from the plan (not written in the text:
        /// set by [`Expr::resolve_ranges`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range: Option<[f64; 2]>,
    },
    /// How many times a trigger fired in the current stage.
    Fired(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Logic(LogicOp, Box<Expr>, Box<Expr>),
    When(Box<Expr>, Box<Expr>),
}

/// What a comparison asks: whether the canary is conclusively within the margin
/// (`not_above`, `not_below`, for gates) or conclusively beyond it (`above`, `below`, for
/// triggers). Anything short of conclusive is "not yet known", never true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    NotAbove,
    NotBelow,
    Above,
    Below,
}

impl Test {
    pub const ALL: [Test; 4] = [Test::NotAbove, Test::NotBelow, Test::Above, Test::Below];

    pub fn name(self) -> &'static str {
        match self {
            Test::NotAbove => "not_above",
            Test::NotBelow => "not_below",
            Test::Above => "above",
            Test::Below => "below",
        }
    }

    /// Which way is worse for the canary.
    pub fn worse(self) -> crate::sequential::Worse {
        match self {
            Test::NotAbove | Test::Above => crate::sequential::Worse::Above,
            Test::NotBelow | Test::Below => crate::sequential::Worse::Below,
        }
    }

    /// True on a conclusive "worse" (a trigger's test) rather than on "not worse".
    pub fn asks_worse(self) -> bool {
        matches!(self, Test::Above | Test::Below)
    }
}

/// The chance of a wrong conclusive verdict a comparison allows when the plan says none.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// One metric read by an expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRead {
    pub metric: String,
    pub selector: Selector,
    pub aggregate: Aggregate,
    pub offset: Millis,
}

impl Expr {
    /// The metric this node reads, when it is a metric read.
    pub fn read(&self) -> Option<MetricRead> {
        match &self.kind {
            Kind::Metric {
                aggregate,
                metric,
                selector,
                offset,
            } => Some(MetricRead {
                metric: metric.clone(),
                selector: selector.clone(),
                aggregate: aggregate.clone(),
                offset: *offset,
            }),
            _ => None,
        }
    }

    /// Gives every comparison of a mean the bounds its metric's values keep (`range(metric)`):
    /// what its confidence sequence rests on.
    pub fn resolve_ranges(&mut self, range: &impl Fn(&str) -> Option<[f64; 2]>) {
        match &mut self.kind {
            Kind::Compare {
                canary,
                range: bounds,
                ..
            } => {
                *bounds = canary.read().and_then(|r| range(&r.metric));
            }
            Kind::Neg(a) | Kind::Not(a) | Kind::AtEntry(a) | Kind::Slope(a) => {
                a.resolve_ranges(range)
            }
            Kind::Quantified { body, .. } => body.resolve_ranges(range),
            Kind::Arith(_, a, b) | Kind::Cmp(_, a, b) | Kind::Logic(_, a, b) | Kind::When(a, b) => {
                a.resolve_ranges(range);
                b.resolve_ranges(range);
            }
            _ => {}
        }
    }

    /// The plain comparison a chart draws for this node: itself for `a <= b`, and for a
    /// sequential comparison the canary against its limit, `not_above(c, b, 10%)` as
    /// `c <= 1.1 * b` for a quantile or `c <= b + 0.1` for a rate or mean. `None` for
    /// anything else.
    pub fn plain_comparison(&self) -> Option<(CmpOp, Expr, Expr)> {
        match &self.kind {
            Kind::Cmp(op, a, b) => Some((*op, (**a).clone(), (**b).clone())),
            Kind::Compare {
                test,
                canary,
                baseline,
                margin,
                ..
            } => {
                let at = |kind| Expr {
                    kind,
                    column: self.column,
                };
                let (op, sign) = match test {
                    Test::NotAbove => (CmpOp::Le, 1.0),
                    Test::Above => (CmpOp::Gt, 1.0),
                    Test::NotBelow => (CmpOp::Ge, -1.0),
                    Test::Below => (CmpOp::Lt, -1.0),
                };
                let ratio = matches!(
                    canary.read().map(|r| r.aggregate),
                    Some(Aggregate::Quantile(_))
                );
                let limit = if ratio {
                    at(Kind::Arith(
                        ArithOp::Mul,
                        Box::new(at(Kind::Number(1.0 + sign * margin))),
                        baseline.clone(),
                    ))
                } else {
                    at(Kind::Arith(
                        if sign > 0.0 {
                            ArithOp::Add
                        } else {
                            ArithOp::Sub
                        },
                        baseline.clone(),
                        Box::new(at(Kind::Number(*margin))),
                    ))
                };
                Some((op, (**canary).clone(), limit))
            }
            _ => None,
        }
    }

    /// Every metric the expression reads, in reading order.
    pub fn metrics(&self) -> Vec<MetricRead> {
        let mut out = Vec::new();
        self.visit(&mut |e| out.extend(e.read()));
        out
    }

    /// Calls `f` on this node and on every node below it, parents first.
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match &self.kind {
            Kind::Neg(a) | Kind::Not(a) | Kind::AtEntry(a) | Kind::Slope(a) => a.visit(f),
            Kind::Quantified { body, .. } => body.visit(f),
            Kind::Arith(_, a, b) | Kind::Cmp(_, a, b) | Kind::Logic(_, a, b) | Kind::When(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Kind::Compare {
                canary, baseline, ..
            } => {
                canary.visit(f);
                baseline.visit(f);
            }
            _ => {}
        }
    }

    /// Binding strength, for printing with only the parentheses needed.
    fn precedence(&self) -> u8 {
        match &self.kind {
            Kind::When(..) => 1,
            Kind::Logic(LogicOp::Or, ..) => 2,
            Kind::Logic(LogicOp::And, ..) => 3,
            Kind::Not(_) => 4,
            Kind::Cmp(..) => 5,
            Kind::Arith(ArithOp::Add | ArithOp::Sub, ..) => 6,
            Kind::Arith(ArithOp::Mul | ArithOp::Div, ..) => 7,
            Kind::Neg(_) => 8,
            _ => 9,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        })
    }
}

/// A duration as the lexer reads it back, in the largest unit that divides it.
fn duration_text(ms: Millis) -> String {
    use crate::time::{HOUR, MINUTE, SECOND};
    for (unit, name) in [(HOUR, "h"), (MINUTE, "m"), (SECOND, "s")] {
        if ms % unit == 0 {
            return format!("{}{name}", ms / unit);
        }
    }
    format!("{ms}ms")
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `strict` parenthesises equal precedence too (the right side of - and /, and the
        // non-associative comparison).
        let child = |f: &mut fmt::Formatter<'_>, e: &Expr, strict: bool| {
            let p = self.precedence();
            if e.precedence() < p || (strict && e.precedence() == p) {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match &self.kind {
            Kind::Number(n) => write!(f, "{n}"),
            Kind::Bool(b) => write!(f, "{b}"),
            Kind::Flag(name) => f.write_str(name),
            Kind::Metric {
                aggregate,
                metric,
                selector,
                offset,
            } => {
                let name = aggregate.name();
                write!(f, "{name}({metric}")?;
                if !selector.is_empty() {
                    f.write_str("{")?;
                    for (i, (k, v)) in selector.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{k}=")?;
                        write_string(f, v)?;
                    }
                    f.write_str("}")?;
                }
                if *offset != 0 {
                    write!(f, " offset {}", duration_text(*offset))?;
                }
                if let Aggregate::Share(v) = aggregate {
                    f.write_str(", ")?;
                    write_string(f, v)?;
                }
                f.write_str(")")
            }
            Kind::AtEntry(a) => write!(f, "at_entry({a})"),
            Kind::Slope(a) => write!(f, "slope({a})"),
            Kind::Quantified { all, label, body } => {
                write!(f, "{}({label}, {body})", if *all { "all" } else { "any" })
            }
            Kind::Compare {
                test,
                canary,
                baseline,
                margin,
                alpha,
                ..
            } => {
                write!(f, "{}({canary}, {baseline}, {margin}", test.name())?;
                if let Some(a) = alpha {
                    write!(f, ", {a}")?;
                }
                f.write_str(")")
            }
            Kind::Fired(trigger) => {
                f.write_str("fired(")?;
                write_string(f, trigger)?;
                f.write_str(")")
            }
            Kind::PromQl(q) => {
                f.write_str("promql(")?;
                write_string(f, q)?;
                f.write_str(")")
            }
            Kind::Neg(a) => {
                f.write_str("-")?;
                child(f, a, true)
            }
            Kind::Not(a) => {
                f.write_str("not ")?;
                child(f, a, false)
            }
            Kind::Arith(op, a, b) => {
                child(f, a, false)?;
                let sym = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                };
                // Operators group to the left, so an equal-precedence right side keeps its
                // parentheses: a * (b * c) must not print as a * b * c.
                write!(f, " {sym} ")?;
                child(f, b, true)
            }
            Kind::Cmp(op, a, b) => {
                child(f, a, true)?;
                write!(f, " {op} ")?;
                child(f, b, true)
            }
            Kind::Logic(op, a, b) => {
                child(f, a, false)?;
                f.write_str(if *op == LogicOp::And { " and " } else { " or " })?;
                child(f, b, true)
            }
            Kind::When(a, b) => {
                // `when` does not chain, so a nested one on either side keeps its parentheses.
                child(f, a, true)?;
                f.write_str(" when ")?;
                child(f, b, true)
            }
        }
    }
}

#[cfg(test)]
mod tests;
