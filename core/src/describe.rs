//! How a gate or trigger status reads in words. The app, the wall and the CLI all say the same
//! thing, so a person comparing the screen with a terminal never sees two stories.

use crate::expr::CmpTrace;
use crate::gates::{GateStatus, TriggerStatus, Verdict};
use crate::time::Span;

impl Verdict {
    /// `PASS`, `FAIL`, `NO DATA`, `N/A`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NoData => "NO DATA",
            Verdict::NotApplicable => "N/A",
        }
    }
}

/// A value as the gate board shows it: whole numbers from 100, more digits below.
pub fn number(v: Option<f64>) -> String {
    match v {
        None => "no data".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

/// Every comparison with both sides' values: `p95(latency_ms) = 612 <= 800`.
pub fn observed(comparisons: &[CmpTrace]) -> String {
    comparisons
        .iter()
        .map(|c| {
            format!(
                "{} = {} {} {}",
                c.left,
                number(c.left_value),
                c.op,
                number(c.right_value)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl GateStatus {
    /// Why there is no data, or the observed values against the thresholds.
    pub fn observed(&self) -> String {
        self.reason
            .clone()
            .unwrap_or_else(|| observed(&self.comparisons))
    }

    /// `held 1h`, or `held 41m of 1h, needs 19m`.
    pub fn held_text(&self) -> String {
        if self.held() {
            format!("held {}", self.held_for.human())
        } else {
            format!(
                "held {} of {}, needs {}",
                self.held_for.human(),
                self.hold.human(),
                self.needs.human()
            )
        }
    }
}

impl TriggerStatus {
    /// `FIRED`, `BREACHING`, `NO DATA` or `OK`.
    pub fn word(&self) -> &'static str {
        match (self.fired, self.verdict) {
            (true, _) => "FIRED",
            (false, Verdict::Pass) => "BREACHING",
            (false, Verdict::NoData) => "NO DATA",
            _ => "OK",
        }
    }

    /// Whether the word means trouble (drawn red).
    pub fn alarming(&self) -> bool {
        self.fired || self.verdict == Verdict::Pass
    }

    pub fn observed(&self) -> String {
        self.reason
            .clone()
            .unwrap_or_else(|| observed(&self.comparisons))
    }

    /// `true for 30s of 2m`, `kill after 2m`, or `not armed in this stage`.
    pub fn state_text(&self) -> String {
        if !self.armed {
            "not armed in this stage".to_string()
        } else if self.true_for > Span(0) {
            format!(
                "true for {} of {}",
                self.true_for.human(),
                self.for_.human()
            )
        } else {
            format!("{:?} after {}", self.action, self.for_.human()).to_lowercase()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_the_digits_that_matter() {
        assert_eq!(number(Some(612.4)), "612");
        assert_eq!(number(Some(1.5)), "1.50");
        assert_eq!(number(Some(0.004)), "0.0040");
        assert_eq!(number(None), "no data");
    }

    #[test]
    fn comparisons_show_both_sides() {
        let c = CmpTrace {
            left: "p95(latency_ms)".into(),
            left_value: Some(612.0),
            op: "<=".into(),
            right: "800ms".into(),
            right_value: Some(800.0),
            holds: Some(true),
        };
        assert_eq!(observed(&[c]), "p95(latency_ms) = 612 <= 800");
    }
}
