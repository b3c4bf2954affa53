//! Timestamps and durations as plain integers of milliseconds, and the human duration syntax
//! (`10s`, `60m`, `24h`, `1h30m`) used in plans.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. An integer so that bucket arithmetic is exact.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// A span of time in milliseconds, written in plans as `10s`, `5m`, `24h`, `1h30m`, `250ms`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Span(pub Millis);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("empty duration")]
    Empty,
    #[error(
        "`{0}` is not a duration: write a number followed by ms, s, m, h or d (e.g. `5m`, `1h30m`)"
    )]
    Malformed(String),
}

impl Span {
    pub fn millis(self) -> Millis {
        self.0
    }

    /// Parses `250ms`, `10s`, `5m`, `24h`, `2d`, and sums such as `1h30m`.
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SpanError::Empty);
        }
        let bad = || SpanError::Malformed(text.to_string());
        let mut total: Millis = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let number: Millis = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ms" => 1,
                "s" => SECOND,
                "m" => MINUTE,
                "h" => HOUR,
                "d" => DAY,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = number
                .checked_mul(scale)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        Ok(Span(total))
    }

    /// Renders the span the way a person reads it on the wall: `41m`, `1h 05m`, `12s`.
    pub fn human(self) -> String {
        let secs = self.0.max(0) / SECOND;
        let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) if s == 0 => format!("{m}m"),
            (0, _) => format!("{m}m {s:02}s"),
            _ => format!("{h}h {m:02}m"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_plans_use() {
        assert_eq!(Span::parse("250ms"), Ok(Span(250)));
        assert_eq!(Span::parse("10s"), Ok(Span(10 * SECOND)));
        assert_eq!(Span::parse("60m"), Ok(Span(HOUR)));
        assert_eq!(Span::parse("24h"), Ok(Span(DAY)));
        assert_eq!(Span::parse("1h30m"), Ok(Span(90 * MINUTE)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "",
            "5",
            "m",
            "5 minutes",
            "5x",
            "-5m",
            "99999999999999999999h",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn renders_for_people() {
        assert_eq!(Span(41 * MINUTE).human(), "41m");
        assert_eq!(Span(HOUR + 5 * MINUTE).human(), "1h 05m");
        assert_eq!(Span(12 * SECOND).human(), "12s");
    }
}
