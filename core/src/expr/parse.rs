//! Text to `Expr`: a lexer that normalises units, and a precedence-climbing parser whose
//! errors name the column and what was expected.

use super::{ArithOp, CmpOp, Expr, ExprError, Kind, LogicOp, Test};
use crate::query::{Aggregate, Selector};
use crate::time::{DAY, Millis};

/// The longest offset the parser takes; how far back the store can answer is the plan
/// checker's business.
const MAX_OFFSET: Millis = 30 * DAY;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Assign,
    Plus,
    Minus,
    Star,
    Slash,
    Cmp(CmpOp),
    AndAnd,
    OrOr,
    Bang,
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "the end".into(),
        Some(Tok::Num(n)) => format!("the number {n}"),
        Some(Tok::Name(n)) => format!("\"{n}\""),
        Some(Tok::Str(s)) => format!("the string \"{s}\""),
        Some(Tok::Cmp(op)) => format!("\"{op}\""),
        Some(t) => format!(
            "\"{}\"",
            match t {
                Tok::LParen => "(",
                Tok::RParen => ")",
                Tok::LBrace => "{",
                Tok::RBrace => "}",
                Tok::Comma => ",",
                Tok::Assign => "=",
                Tok::Plus => "+",
                Tok::Minus => "-",
                Tok::Star => "*",
                Tok::Slash => "/",
                Tok::AndAnd => "&&",
                Tok::OrOr => "||",
                _ => "!",
            }
        ),
    }
}

fn err(column: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        column,
        message: message.into(),
    }
}

/// Tokens with their 1-based columns.
fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars
            .get(i..i + 2)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let (tok, len) = match (c, two.as_str()) {
            (_, "<=") => (Tok::Cmp(CmpOp::Le), 2),
            (_, ">=") => (Tok::Cmp(CmpOp::Ge), 2),
            (_, "==") => (Tok::Cmp(CmpOp::Eq), 2),
            (_, "!=") => (Tok::Cmp(CmpOp::Ne), 2),
            (_, "&&") => (Tok::AndAnd, 2),
            (_, "||") => (Tok::OrOr, 2),
            ('<', _) => (Tok::Cmp(CmpOp::Lt), 1),
            ('>', _) => (Tok::Cmp(CmpOp::Gt), 1),
            ('!', _) => (Tok::Bang, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            (',', _) => (Tok::Comma, 1),
            ('=', _) => (Tok::Assign, 1),
            ('+', _) => (Tok::Plus, 1),
            ('-', _) => (Tok::Minus, 1),
            ('*', _) => (Tok::Star, 1),
            ('/', _) => (Tok::Slash, 1),
            ('"', _) => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(err(col, "unclosed string: add the closing \"")),
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(&n) = chars.get(j + 1) {
                                s.push(n);
                            }
                            j += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                (Tok::Str(s), j + 1 - i)
            }
            (c, _) if c.is_ascii_digit() || c == '.' => {
                let mut j = i;
                while chars
                    .get(j)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                let n: f64 = text
                    .parse()
                    .map_err(|_| err(col, format!("\"{text}\" is not a number")))?;
                let mut k = j;
                while chars
                    .get(k)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == '%')
                {
                    k += 1;
                }
                let unit: String = chars[j..k].iter().collect();
                let scale = match unit.as_str() {
                    "" => 1.0,
                    "ms" => 1.0,
                    "s" => 1_000.0,
                    "m" => 60_000.0,
                    "h" => 3_600_000.0,
                    "d" => 86_400_000.0,
                    "%" => 0.01,
                    other => {
                        return Err(err(
                            j + 1,
                            format!("unknown unit \"{other}\": use ms, s, m, h, d or %"),
                        ));
                    }
                };
                (Tok::Num(n * scale), k - i)
            }
            (c, _) if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i;
                while chars
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    j += 1;
                }
                (Tok::Name(chars[i..j].iter().collect()), j - i)
            }
            (c, _) => return Err(err(col, format!("unexpected character \"{c}\""))),
        };
        out.push((tok, col));
        i += len;
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, c)| *c)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == word)
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err(
                self.col(),
                format!("expected {what}, found {}", describe(self.peek())),
            ))
        }
    }

    /// expr := logic ("when" logic)?
    fn expr(&mut self) -> Result<Expr, ExprError> {
        let body = self.logic(0)?;
        if self.is_word("when") {
            self.pos += 1;
            let guard = self.logic(0)?;
            let column = body.column;
            return Ok(Expr {
                kind: Kind::When(Box::new(body), Box::new(guard)),
                column,
            });
        }
        Ok(body)
    }

    /// `or` (level 0) and `and` (level 1), left-associative.
    fn logic(&mut self, level: u8) -> Result<Expr, ExprError> {
        let mut lhs = if level == 0 {
            self.logic(1)?
        } else {
            self.negation()?
        };
        loop {
            let op = match self.peek() {
                Some(Tok::OrOr) if level == 0 => LogicOp::Or,
                Some(Tok::Name(n)) if level == 0 && n == "or" => LogicOp::Or,
                Some(Tok::AndAnd) if level == 1 => LogicOp::And,
                Some(Tok::Name(n)) if level == 1 && n == "and" => LogicOp::And,
                _ => return Ok(lhs),
            };
            self.pos += 1;
            let rhs = if level == 0 {
                self.logic(1)?
            } else {
                self.negation()?
            };
            let column = lhs.column;
            lhs = Expr {
                kind: Kind::Logic(op, Box::new(lhs), Box::new(rhs)),
                column,
            };
        }
    }

    fn negation(&mut self) -> Result<Expr, ExprError> {
        if self.is_word("not") || self.peek() == Some(&Tok::Bang) {
            let column = self.col();
            self.pos += 1;
            let inner = self.negation()?;
            return Ok(Expr {
                kind: Kind::Not(Box::new(inner)),
                column,
            });
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ExprError> {
        let lhs = self.sum()?;
        let Some(Tok::Cmp(op)) = self.peek().cloned() else {
            return Ok(lhs);
        };
        self.pos += 1;
        let rhs = self.sum()?;
        if let Some(Tok::Cmp(_)) = self.peek() {
            return Err(err(
                self.col(),
                "comparisons do not chain: write a < b and b < c",
            ));
        }
        let column = lhs.column;
        Ok(Expr {
            kind: Kind::Cmp(op, Box::new(lhs), Box::new(rhs)),
            column,
        })
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.product()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => ArithOp::Add,
                Some(Tok::Minus) => ArithOp::Sub,
                _ => return Ok(lhs),
            };
            self.pos += 1;
            let rhs = self.product()?;
            let column = lhs.column;
            lhs = Expr {
                kind: Kind::Arith(op, Box::new(lhs), Box::new(rhs)),
                column,
            };
        }
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Star) => ArithOp::Mul,
                Some(Tok::Slash) => ArithOp::Div,
                _ => return Ok(lhs),
            };
            self.pos += 1;
            let rhs = self.unary()?;
            let column = lhs.column;
            lhs = Expr {
                kind: Kind::Arith(op, Box::new(lhs), Box::new(rhs)),
                column,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.peek() == Some(&Tok::Minus) {
            let column = self.col();
            self.pos += 1;
            let inner = self.unary()?;
            return Ok(Expr {
                kind: Kind::Neg(Box::new(inner)),
                column,
            });
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        let column = self.col();
        let at = |kind| Ok(Expr { kind, column });
        match self.next() {
            Some(Tok::Num(n)) => at(Kind::Number(n)),
            Some(Tok::LParen) => {
                let inner = self.expr()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(err(
                        self.col(),
                        format!(
                            "unclosed \"(\" opened at column {column}: expected \")\", found {}",
                            describe(self.peek())
                        ),
                    ));
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Tok::Name(name)) => match name.as_str() {
                "true" => at(Kind::Bool(true)),
                "false" => at(Kind::Bool(false)),
                "and" | "or" | "not" | "when" => {
                    Err(err(column, format!("expected a value before \"{name}\"")))
                }
                _ if self.peek() == Some(&Tok::LParen) => {
                    self.pos += 1;
                    let kind = self.call(&name, column)?;
                    self.expect(Tok::RParen, &format!("\")\" to close {name}("))?;
                    at(kind)
                }
                _ => at(Kind::Flag(name)),
            },
            other => {
                self.pos -= 1;
                Err(err(
                    column,
                    format!("expected a value, found {}", describe(other.as_ref())),
                ))
            }
        }
    }

    /// `not_above(canary, baseline, margin)` or with a fourth argument, the alpha.
    fn comparison(&mut self, test: Test, column: usize) -> Result<Kind, ExprError> {
        let name = test.name();
        let usage = format!(
            "{name}(canary read, baseline read, margin), e.g. {name}(p95(latency_ms{{variant=\"canary\"}}), p95(latency_ms{{variant=\"baseline\"}}), 10%)"
        );
        let canary = self.sum()?;
        self.expect(
            Tok::Comma,
            &format!("\",\" after the canary read in {usage}"),
        )?;
        let baseline = self.sum()?;
        self.expect(Tok::Comma, &format!("\",\" and a margin in {usage}"))?;
        let margin = self.number_arg(name, "the margin (10% or 0.5%)")?;
        let alpha = if self.peek() == Some(&Tok::Comma) {
            self.pos += 1;
            let col = self.col();
            let a = self.number_arg(name, "the alpha (5%)")?;
            if !(a > 0.0 && a <= 0.2) {
                return Err(err(
                    col,
                    format!("{name}( alpha must be above 0 and at most 20%, e.g. 5%"),
                ));
            }
            Some(a)
        } else {
            None
        };
        if !(0.0..=10.0).contains(&margin) {
            return Err(err(
                column,
                format!("{name}( margin must be between 0 and 1000%"),
            ));
        }
        Ok(Kind::Compare {
            test,
            canary: Box::new(canary),
            baseline: Box::new(baseline),
            margin,
            alpha,
            range: None,
        })
    }

    fn number_arg(&mut self, name: &str, what: &str) -> Result<f64, ExprError> {
        let col = self.col();
        match self.next() {
            Some(Tok::Num(n)) => Ok(n),
            other => Err(err(
                col,
                format!(
                    "{name}( needs {what} as a number here, found {}",
                    describe(other.as_ref())
                ),
            )),
        }
    }

    fn call(&mut self, name: &str, column: usize) -> Result<Kind, ExprError> {
        if name == "promql" {
            return match self.next() {
                Some(Tok::Str(q)) if !q.trim().is_empty() => Ok(Kind::PromQl(q)),
                _ => Err(err(
                    column,
                    "promql takes one non-empty quoted query: promql(\"...\")",
                )),
            };
        }
        if name == "at_entry" {
            let inner = self.sum()?;
            return Ok(Kind::AtEntry(Box::new(inner)));
        }
        if name == "all" || name == "any" {
            let label_col = self.col();
            let label = match self.next() {
                Some(Tok::Name(l)) => l,
                other => {
                    return Err(err(
                        label_col,
                        format!(
                            "{name}( needs a label name first, e.g. {name}(endpoint, p95(latency_ms) <= 300ms); found {}",
                            describe(other.as_ref())
                        ),
                    ));
                }
            };
            self.expect(Tok::Comma, &format!("\",\" after the label in {name}("))?;
            let body = self.expr()?;
            return Ok(Kind::Quantified {
                all: name == "all",
                label,
                body: Box::new(body),
            });
        }
        if let Some(test) = Test::ALL.into_iter().find(|t| t.name() == name) {
            return self.comparison(test, column);
        }
        if name == "slope" {
            let inner = self.sum()?;
            return Ok(Kind::Slope(Box::new(inner)));
        }
        if name == "fired" {
            return match self.next() {
                // Trigger ids may hold "-": quote those, fired("error-spike").
                Some(Tok::Name(trigger) | Tok::Str(trigger)) => Ok(Kind::Fired(trigger)),
                other => Err(err(
                    column,
                    format!(
                        "fired( needs a trigger id, found {}",
                        describe(other.as_ref())
                    ),
                )),
            };
        }
        let aggregate = match name {
            "rate" => Aggregate::Rate,
            "per_second" => Aggregate::PerSecond,
            "share" => Aggregate::Share(String::new()),
            "mean" | "avg" => Aggregate::Mean,
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "max" => Aggregate::Max,
            "min" => Aggregate::Min,
            "last" => Aggregate::Last,
            _ => Aggregate::Quantile(quantile(name).ok_or_else(|| {
                err(column, format!("unknown function \"{name}\": use p50..p99, p999, rate, share, mean, count, sum, max, min, last, per_second, slope, at_entry, fired, not_above, not_below, above, below or promql"))
            })?),
        };
        let metric_col = self.col();
        let metric = match self.next() {
            Some(Tok::Name(m)) => m,
            other => {
                return Err(err(
                    metric_col,
                    format!(
                        "{name}( needs a metric name, found {}",
                        describe(other.as_ref())
                    ),
                ));
            }
        };
        let selector = self.selector()?;
        let offset = self.offset()?;
        let aggregate = match aggregate {
            Aggregate::Share(_) => {
                self.expect(
                    Tok::Comma,
                    "\",\" and the category value, as in share(mode, fallback)",
                )?;
                let value_col = self.col();
                match self.next() {
                    Some(Tok::Name(v) | Tok::Str(v)) => Aggregate::Share(v),
                    other => {
                        return Err(err(
                            value_col,
                            format!(
                                "expected a category value, found {}",
                                describe(other.as_ref())
                            ),
                        ));
                    }
                }
            }
            a => a,
        };
        Ok(Kind::Metric {
            aggregate,
            metric,
            selector,
            offset,
        })
    }

    /// `offset 24h` after a metric: how far back its window ends (0 without one).
    fn offset(&mut self) -> Result<Millis, ExprError> {
        if !self.is_word("offset") {
            return Ok(0);
        }
        self.pos += 1;
        let column = self.col();
        match self.next() {
            Some(Tok::Num(ms)) if ms >= 1.0 && ms.fract() == 0.0 && ms <= MAX_OFFSET as f64 => {
                Ok(ms as Millis)
            }
            other => Err(err(
                column,
                format!(
                    "offset takes a duration up to 30d such as 24h, found {}",
                    describe(other.as_ref())
                ),
            )),
        }
    }

    fn selector(&mut self) -> Result<Selector, ExprError> {
        let mut selector = Selector::new();
        if self.peek() != Some(&Tok::LBrace) {
            return Ok(selector);
        }
        let open = self.col();
        self.pos += 1;
        loop {
            let key_col = self.col();
            let key = match self.next() {
                Some(Tok::Name(k)) => k,
                other => {
                    return Err(err(
                        key_col,
                        format!("expected a label name, found {}", describe(other.as_ref())),
                    ));
                }
            };
            self.expect(Tok::Assign, &format!("\"=\" after label {key}"))?;
            let value_col = self.col();
            let value = match self.next() {
                Some(Tok::Str(v)) => v,
                other => {
                    return Err(err(
                        value_col,
                        format!(
                            "label values are quoted: {key}=\"...\", found {}",
                            describe(other.as_ref())
                        ),
                    ));
                }
            };
            selector.insert(key, value);
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RBrace) => return Ok(selector),
                _ => {
                    return Err(err(
                        open,
                        "unclosed \"{\": expected \",\" or \"}\" after a label",
                    ));
                }
            }
        }
    }
}

/// `p95` -> 0.95, `p5` -> 0.05, `p999` -> 0.999. p0 and p100 and beyond are not quantiles.
fn quantile(name: &str) -> Option<f64> {
    let digits = name.strip_prefix('p')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    match digits.len() {
        1 | 2 => Some(digits.parse::<f64>().ok()? / 100.0),
        _ if digits.starts_with("99") => format!("0.{digits}").parse().ok(),
        _ => None,
    }
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(err(1, "empty expression"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: src.chars().count() + 1,
    };
    let e = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(err(
            p.col(),
            format!(
                "unexpected {} after a complete expression (missing and/or?)",
                describe(p.peek())
            ),
        ));
    }
    Ok(e)
}
