//! Chart series as they travel from server to app: named, unit-tagged points on a time axis.
//! A point without a value is a gap (no samples), drawn as a gap and never as zero.

use serde::{Deserialize, Serialize};

use crate::time::Millis;
use crate::unit::Unit;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the bucket the value summarises.
    pub t: Millis,
    /// `None` when the bucket had no samples.
    pub v: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Stable id, e.g. `latency_ms.p95`.
    pub id: String,
    /// What a person reads in the legend, e.g. `p95 latency`.
    pub label: String,
    /// What `v` is in; a ratio is `ratio` on the wire, as it always was.
    #[serde(with = "crate::unit::ratio_word")]
    pub unit: Unit,
    pub points: Vec<Point>,
}

impl Series {
    /// The newest point that has a value.
    pub fn latest(&self) -> Option<Point> {
        self.points.iter().rev().find(|p| p.v.is_some()).copied()
    }
}

/// A set of series over one time range, as one chart or one live update draws them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub rollout: String,
    /// Server time when the frame was made.
    pub at: Millis,
    /// Width of each point's bucket.
    pub step: Millis,
    pub series: Vec<Series>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_skips_gaps() {
        let s = Series {
            id: "x".into(),
            label: "x".into(),
            unit: Unit::Ms,
            points: vec![Point { t: 0, v: Some(1.0) }, Point { t: 10, v: None }],
        };
        assert_eq!(s.latest(), Some(Point { t: 0, v: Some(1.0) }));
    }
}
