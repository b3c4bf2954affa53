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

/// Every comparison with both sides' values in their unit: `p95(latency_ms) = 612ms <= 800ms`.
pub fn observed(comparisons: &[CmpTrace]) -> String {
    comparisons
        .iter()
        .map(|c| {
            let unit = c.unit.clone().unwrap_or_default();
            format!(
                "{} = {} {} {}",
                c.left,
                unit.format(c.left_value),
                c.op,
                unit.format(c.right_value)
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
    /// `FIRED`, `BREACHING`, `OVER, NOT ARMED`, `NO DATA` or `OK`. A trigger that is not
    /// armed in this stage cannot act, so its condition being true is not called a breach.
    pub fn word(&self) -> &'static str {
        match (self.fired, self.verdict) {
            (true, _) => "FIRED",
            (false, Verdict::Pass) if self.armed => "BREACHING",
            (false, Verdict::Pass) => "OVER, NOT ARMED",
            (false, Verdict::NoData) => "NO DATA",
            _ => "OK",
        }
    }

    /// Whether the word means trouble (drawn red): only what can act, or has.
    pub fn alarming(&self) -> bool {
        self.fired || (self.armed && self.verdict == Verdict::Pass)
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
    use crate::unit::Unit;

    #[test]
    fn a_trigger_over_its_line_breaches_only_where_it_is_armed() {
        let mut t = TriggerStatus {
            id: "p95-breach".into(),
            title: "p95 over 900ms".into(),
            expr: "p95(latency_ms) > 900ms".into(),
            verdict: Verdict::Pass,
            reason: None,
            comparisons: Vec::new(),
            action: crate::plan::TriggerAction::Kill,
            severity: crate::plan::Severity::Critical,
            for_: Span(60_000),
            true_for: Span(0),
            armed: true,
            fired: false,
        };
        assert_eq!((t.word(), t.alarming()), ("BREACHING", true));
        t.armed = false;
        assert_eq!((t.word(), t.alarming()), ("OVER, NOT ARMED", false));
        t.fired = true;
        assert_eq!((t.word(), t.alarming()), ("FIRED", true));
        t.fired = false;
        t.verdict = Verdict::Fail;
        assert_eq!((t.word(), t.alarming()), ("OK", false));
    }

    #[test]
    fn numbers_keep_the_digits_that_matter() {
        assert_eq!(Unit::None.format(Some(612.4)), "612");
        assert_eq!(Unit::None.format(Some(1.5)), "1.50");
        assert_eq!(Unit::None.format(Some(0.004)), "0.0040");
        assert_eq!(Unit::None.format(None), "no data");
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
            unit: None,
        };
        assert_eq!(
            observed(std::slice::from_ref(&c)),
            "p95(latency_ms) = 612 <= 800"
        );
        let ms = CmpTrace {
            unit: Some(Unit::Ms),
            ..c
        };
        assert_eq!(observed(&[ms]), "p95(latency_ms) = 612ms <= 800ms");
        let ratio = CmpTrace {
            left: "rate(error)".into(),
            left_value: Some(0.004),
            op: "<=".into(),
            right: "0.75%".into(),
            right_value: Some(0.0075),
            holds: Some(true),
            unit: Some(Unit::Ratio),
        };
        assert_eq!(observed(&[ratio]), "rate(error) = 0.4% <= 0.75%");
        assert_eq!(Unit::Ratio.format(Some(0.246)), "24.6%");
        assert_eq!(Unit::Own("GiB".into()).format(Some(3.2)), "3.20 GiB");
        assert_eq!(Unit::Ms.format(None), "no data");
    }
}
