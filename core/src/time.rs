//! Timestamps and durations as plain integers of milliseconds, and the human duration syntax
//! (`10s`, `60m`, `24h`, `1h30m`) used in plans.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. An integer so that bucket arithmetic is exact.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;
/// How far ahead (or back) a T-0 may be scheduled.
pub const MAX_SCHEDULE: Millis = 366 * DAY;

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

/// A time relative to a rollout's T-0 as runbooks write it: `T-60m`, `T+15m`, `T+2h`, `T+0`,
/// `T-1d`. `None` for anything else (a phase such as "Launch Day" stays a label).
pub fn t_offset(text: &str) -> Option<Millis> {
    let rest = text.trim().strip_prefix('T')?;
    let (sign, amount) = match rest.chars().next()? {
        '+' => (1, &rest[1..]),
        '-' => (-1, &rest[1..]),
        _ => return None,
    };
    let amount = amount.trim();
    let span = if amount == "0" {
        Span(0)
    } else {
        Span::parse(amount).ok()?
    };
    Some(sign * span.0)
}

/// `live+15m`: a time after the latest entry into stage `live`, as `(stage, offset)`. The
/// stage is a plain id (letters, digits, `-`, `_`); the plan check says whether it is one.
pub fn stage_offset(text: &str) -> Option<(&str, Millis)> {
    let (stage, amount) = text.trim().split_once('+')?;
    let stage = stage.trim();
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if stage.is_empty() || stage == "T" || !stage.chars().all(plain) {
        return None;
    }
    let amount = amount.trim();
    let span = if amount == "0" {
        Span(0)
    } else {
        Span::parse(amount).ok()?
    };
    Some((stage, span.0))
}

/// An offset from T-0 as a person reads it: `T-1h 00m`, `T+15m`, `T+0`.
pub fn t_label(offset: Millis) -> String {
    match offset {
        0 => "T+0".to_string(),
        o if o < 0 => format!("T-{}", Span(-o).human()),
        o => format!("T+{}", Span(o).human()),
    }
}

/// Why a requested step cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("the step ({step}) is longer than the range ({range})")]
    LongerThanRange { step: String, range: String },
    #[error("the range must be positive")]
    EmptyRange,
}

/// The width of one point of a chart or row of an export over `range`: `requested` (or
/// `range / default_points`), at least one `bucket`, wide enough that `range` holds at most
/// `max_points` steps, rounded up to whole buckets. A client chooses `requested`, so every
/// step of the arithmetic is checked: a step longer than the range is refused rather than
/// wrapped into a loop of 10^15 points.
pub fn step_within(
    range: Millis,
    requested: Option<Millis>,
    bucket: Millis,
    default_points: i64,
    max_points: i64,
) -> Result<Millis, StepError> {
    if range <= 0 || bucket <= 0 {
        return Err(StepError::EmptyRange);
    }
    let step = requested.unwrap_or(range / default_points.max(1));
    if step > range {
        return Err(StepError::LongerThanRange {
            step: Span(step).human(),
            range: Span(range).human(),
        });
    }
    let max_points = max_points.max(1);
    let fewest = range / max_points + i64::from(range % max_points != 0);
    let step = step.max(bucket).max(fewest);
    // `step` is at most max(range, bucket) here, so rounding up cannot overflow for any
    // range a caller can hold; checked anyway.
    let buckets = step.div_euclid(bucket) + i64::from(step.rem_euclid(bucket) != 0);
    buckets.checked_mul(bucket).ok_or(StepError::EmptyRange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_step_is_whole_buckets_and_bounds_the_points(
            range in 1..(30 * DAY),
            requested in proptest::option::of(any::<i64>()),
            bucket in prop::sample::select(vec![SECOND, 10 * SECOND, MINUTE]),
            max_points in 1i64..20_000,
        ) {
            match step_within(range, requested, bucket, 360, max_points) {
                Ok(step) => {
                    prop_assert!(step >= bucket);
                    prop_assert_eq!(step % bucket, 0);
                    // At most max_points steps (plus one for a partial step at either end).
                    prop_assert!(range / step <= max_points);
                    prop_assert!(requested.is_none_or(|r| r <= range));
                }
                Err(_) => prop_assert!(requested.is_some_and(|r| r > range)),
            }
        }
    }

    #[test]
    fn a_huge_step_is_refused_not_wrapped() {
        assert!(matches!(
            step_within(HOUR, Some(i64::MAX), 10 * SECOND, 360, 2000),
            Err(StepError::LongerThanRange { .. })
        ));
        assert_eq!(
            step_within(HOUR, Some(-5), 10 * SECOND, 360, 2000),
            Ok(10 * SECOND)
        );
        assert_eq!(
            step_within(HOUR, None, 10 * SECOND, 360, 2000),
            Ok(10 * SECOND)
        );
        assert_eq!(
            step_within(DAY, Some(61 * SECOND), MINUTE, 360, 10_000),
            Ok(2 * MINUTE)
        );
    }

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
