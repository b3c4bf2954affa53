//! What a number is in, and the one way it is written for people.
//!
//! A plan's metric carries its unit as text (`unit = "ms"`); everything downstream (charts,
//! gates, describe, headline numbers, the app) matches on [`Unit`] instead of strings. On the
//! wire a unit is the word it always was: charts and comparisons say `%` for a ratio, series
//! and headline numbers say `ratio` (see [`ratio_word`]); both read back as [`Unit::Ratio`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A plain number.
    #[default]
    None,
    /// Milliseconds.
    Ms,
    /// A share 0..1, shown as a percentage.
    Ratio,
    /// Percentage points 0..100, as a plan's gauge reports them (`unit = "%"`).
    Percent,
    /// A number of things (events, requests).
    Count,
    /// The plan's own word (`GiB`, `rps`).
    Own(String),
}

impl Unit {
    /// A unit from its wire word (see [`Unit::word`] and [`ratio_word`]).
    pub fn parse(text: &str) -> Unit {
        match text {
            "" => Unit::None,
            "ms" => Unit::Ms,
            "%" | "ratio" => Unit::Ratio,
            "percent" => Unit::Percent,
            "count" => Unit::Count,
            own => Unit::Own(own.to_string()),
        }
    }

    /// The unit a plan author wrote for a metric's values: `%` there means the values are
    /// percentage points (a gauge at 65 is 65 %), unlike a ratio read, which is 0..1.
    pub fn of_plan(text: Option<&str>) -> Unit {
        match text {
            Some("%" | "percent") => Unit::Percent,
            Some(other) => Unit::parse(other),
            None => Unit::None,
        }
    }

    /// The word charts and comparisons use: `ms`, `%`, `count`, the plan's own, or nothing.
    pub fn word(&self) -> &str {
        match self {
            Unit::None => "",
            Unit::Ms => "ms",
            Unit::Ratio => "%",
            Unit::Percent => "percent",
            Unit::Count => "count",
            Unit::Own(own) => own,
        }
    }

    /// What an axis is labelled: `%` for shares, else the word.
    pub fn axis_word(&self) -> &str {
        match self {
            Unit::Ratio | Unit::Percent => "%",
            other => other.word(),
        }
    }

    /// What follows a number on a chart (`612ms`, `4.5%`): counts need nothing.
    pub fn suffix(&self) -> &str {
        match self {
            Unit::Count => "",
            other => other.axis_word(),
        }
    }

    /// Whether values are shown as percentages, so an axis tops out at 100.
    pub fn is_percent(&self) -> bool {
        matches!(self, Unit::Ratio | Unit::Percent)
    }

    /// How much a value is multiplied by to be shown: a ratio 0..1 is shown as 0..100 %.
    pub fn display_scale(&self) -> f64 {
        if *self == Unit::Ratio { 100.0 } else { 1.0 }
    }

    /// A value as the gate board and reasons write it: `612ms`, `0.4%` (ratios are 0..1),
    /// `3.20 GiB`, a bare number, or `no data`.
    pub fn format(&self, v: Option<f64>) -> String {
        let Some(v) = v else {
            return "no data".into();
        };
        match self {
            Unit::Ratio => format!("{}%", trimmed(v * 100.0, &[(100.0, 0), (10.0, 1)], 2)),
            Unit::Percent => format!("{}%", trimmed(v, &[(100.0, 0), (10.0, 1)], 2)),
            Unit::Ms if v.abs() >= 10.0 => format!("{v:.0}ms"),
            Unit::Ms => format!("{v:.2}ms"),
            Unit::None | Unit::Count => number(v),
            Unit::Own(own) => format!("{} {own}", number(v)),
        }
    }

    /// A headline number, shorter than [`Unit::format`] (two significant digits, whole
    /// numbers from 10): `612ms`, `9.8%`, `n/a`.
    pub fn headline(&self, v: Option<f64>) -> String {
        let Some(v) = v else {
            return "n/a".into();
        };
        match self {
            Unit::Ratio => format!("{}%", round_sig(v * 100.0)),
            Unit::Percent => format!("{}%", round_sig(v)),
            Unit::Ms => format!("{}ms", v.round()),
            other => format!("{}{}", round_sig(v), other.word()),
        }
    }
}

/// A number as the gate board shows it: whole numbers from 100, more digits below.
pub fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// `v` with the decimals of the first `(from, decimals)` step its size reaches (else
/// `otherwise`), trailing zeros dropped.
fn trimmed(v: f64, steps: &[(f64, usize)], otherwise: usize) -> String {
    let decimals = steps
        .iter()
        .find(|(from, _)| v.abs() >= *from)
        .map_or(otherwise, |(_, d)| *d);
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// An axis tick as a person writes it: `700`, `42.5`, `3`, `0.25`, never `1000.0` or `0.0`.
pub fn tick(v: f64) -> String {
    let text = trimmed(v, &[(100.0, 0), (10.0, 1)], 2);
    if text == "-0" { "0".into() } else { text }
}

/// Two significant digits, whole numbers from 10: `0.41`, `9.8`, `47`, `612`.
fn round_sig(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    trimmed(v, &[(10.0, 0), (1.0, 1)], 2)
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unit, D::Error> {
        Ok(Unit::parse(&String::deserialize(d)?))
    }
}

/// Serde for fields whose wire word for a ratio is `ratio` (series, headline numbers), as
/// they were before units were a type: `#[serde(with = "crate::unit::ratio_word")]`.
pub mod ratio_word {
    use super::Unit;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(unit: &Unit, s: S) -> Result<S::Ok, S::Error> {
        match unit {
            Unit::Ratio => s.serialize_str("ratio"),
            other => s.serialize_str(other.word()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Unit, D::Error> {
        Ok(Unit::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_read_like_a_person_writes_them() {
        assert_eq!(Unit::Ms.format(Some(611.7)), "612ms");
        assert_eq!(Unit::Ms.format(Some(4.5)), "4.50ms");
        assert_eq!(Unit::Ratio.format(Some(0.246)), "24.6%");
        assert_eq!(Unit::Ratio.format(Some(0.0075)), "0.75%");
        assert_eq!(Unit::Ratio.format(Some(1.0)), "100%");
        // A gauge in percentage points is not scaled again.
        assert_eq!(Unit::of_plan(Some("%")).format(Some(65.0)), "65%");
        assert_eq!(Unit::of_plan(Some("%")).headline(Some(65.0)), "65%");
        assert_eq!(Unit::Own("GiB".into()).format(Some(3.2)), "3.20 GiB");
        assert_eq!(Unit::Count.format(Some(0.5)), "0.5000");
        assert_eq!(Unit::Ms.format(None), "no data");
        assert_eq!(Unit::Ms.headline(Some(611.7)), "612ms");
        assert_eq!(Unit::Ratio.headline(Some(0.0981)), "9.8%");
        assert_eq!(Unit::Ratio.headline(Some(0.00414)), "0.41%");
        assert_eq!(Unit::Ratio.headline(Some(0.0)), "0%");
        assert_eq!(Unit::Ratio.headline(None), "n/a");
    }

    #[test]
    fn the_wire_keeps_its_words() {
        let json = |u: &Unit| serde_json::to_string(u).unwrap();
        assert_eq!(json(&Unit::Ratio), "\"%\"");
        assert_eq!(json(&Unit::None), "\"\"");
        #[derive(Serialize, Deserialize)]
        struct S {
            #[serde(with = "ratio_word")]
            unit: Unit,
        }
        let s = serde_json::to_string(&S { unit: Unit::Ratio }).unwrap();
        assert_eq!(s, r#"{"unit":"ratio"}"#);
        let back: S = serde_json::from_str(&s).unwrap();
        assert_eq!(back.unit, Unit::Ratio);
    }

    proptest! {
        /// Every unit reads back from its word as itself.
        #[test]
        fn words_round_trip(own in "[a-zA-Z/]{1,8}") {
            for unit in [Unit::None, Unit::Ms, Unit::Ratio, Unit::Percent, Unit::Count, Unit::parse(&own)] {
                prop_assert_eq!(Unit::parse(unit.word()), unit);
            }
        }

        /// An axis tick never prints a trailing zero or point (`1000.0`, `0.50`, `3.`).
        #[test]
        fn ticks_have_no_trailing_zeros(v in -1e9f64..1e9) {
            let t = tick(v);
            prop_assert!(!(t.contains('.') && (t.ends_with('0') || t.ends_with('.'))), "{t}");
            prop_assert!(t != "-0");
        }

        /// A finite value always gives some text with no `NaN` or `inf` in it.
        #[test]
        fn finite_values_format(v in -1e12f64..1e12) {
            for unit in [Unit::None, Unit::Ms, Unit::Ratio, Unit::Percent, Unit::Count] {
                let text = unit.format(Some(v));
                prop_assert!(!text.is_empty() && !text.contains("NaN") && !text.contains("inf"));
            }
        }
    }

    #[test]
    fn axis_ticks_read_like_a_person_writes_them() {
        let ticks: Vec<String> = [1000.0, 800.0, 0.0, -0.0, 42.5, 0.25, 0.2, 12.0]
            .into_iter()
            .map(tick)
            .collect();
        assert_eq!(
            ticks,
            ["1000", "800", "0", "0", "42.5", "0.25", "0.2", "12"]
        );
    }
}
