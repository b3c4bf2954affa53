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
    CmpTrace, EvalContext, Evaluation, Outcome, StageMemory, baseline_key, evaluate, value,
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
    /// How many times a trigger fired in the current stage.
    Fired(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Logic(LogicOp, Box<Expr>, Box<Expr>),
    When(Box<Expr>, Box<Expr>),
}

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
