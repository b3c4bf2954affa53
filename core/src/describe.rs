//! How a gate or trigger status reads in words. The app, the wall and the CLI all say the same
//! thing, so a person comparing the screen with a terminal never sees two stories.

use crate::expr::{CmpTrace, SeqTrace};
use crate::gates::{GateStatus, TriggerStatus, Verdict};
use crate::time::Span;

impl Verdict {
    /// `PASS`, `FAIL`, `NO DATA`, `N/A`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NoData => "NO DATA",
            Verdict::NotYetKnown => "NOT YET KNOWN",
            Verdict::NotApplicable => "N/A",
        }
    }
}

/// Every comparison with both sides' values in their unit: `p95(latency_ms) = 612ms <= 800ms`,
/// and a sequential one with its interval ([`sequential`]).
pub fn observed(comparisons: &[CmpTrace]) -> String {
    comparisons
        .iter()
        .map(|c| {
            if let Some(s) = &c.sequential {
                return sequential(c, s);
            }
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

/// A signed percentage: `+12%`, `-3.5%`.
fn signed_percent(v: f64) -> String {
    let p = v * 100.0;
    let text = if p.abs() >= 10.0 {
        format!("{p:+.0}%")
    } else {
        format!("{p:+.1}%")
    };
    if text == "-0%" || text == "-0.0%" {
        text.replacen('-', "+", 1)
    } else {
        text
    }
}

/// The finding of a sequential comparison's interval as words, for the board and reports:
/// `canary p95 -4% to +21% of baseline (allowed up to +10%); 1204 canary and 22880 baseline
/// events in 14m; not yet known, a decision in about 9m`.
pub fn interval(c: &CmpTrace, s: &SeqTrace) -> String {
    use crate::sequential::{Measure, Worse};
    let k = &s.comparison;
    let unit = c.unit.clone().unwrap_or_default();
    let limit = k.limit();
    let end = |v: Option<f64>| match (v, k.measure) {
        (None, _) => "?".to_string(),
        (Some(r), Measure::Ratio) => signed_percent(r - 1.0),
        (Some(d), Measure::Difference) => {
            let text = unit.format(Some(d));
            if d >= 0.0 { format!("+{text}") } else { text }
        }
    };
    let allowed = match (k.measure, k.worse) {
        (Measure::Ratio, Worse::Above) => format!("allowed up to {}", signed_percent(limit - 1.0)),
        (Measure::Ratio, Worse::Below) => {
            format!("allowed down to {}", signed_percent(limit - 1.0))
        }
        (Measure::Difference, Worse::Above) => {
            format!("allowed up to +{}", unit.format(Some(limit)))
        }
        (Measure::Difference, Worse::Below) => {
            format!("allowed down to {}", unit.format(Some(limit)))
        }
    };
    let of = match k.measure {
        Measure::Ratio => "of",
        Measure::Difference => "against",
    };
    match (k.low, k.high) {
        (None, None) => format!("too few events for an interval yet ({allowed})"),
        (None, high) => format!("at most {} {of} baseline ({allowed})", end(high)),
        (low, None) => format!("at least {} {of} baseline ({allowed})", end(low)),
        (low, high) => format!("{} to {} {of} baseline ({allowed})", end(low), end(high)),
    }
}

/// A sequential comparison as people read it: what it found, the interval against the
/// allowed line, the samples on each side, and when a decision may come.
pub fn sequential(c: &CmpTrace, s: &SeqTrace) -> String {
    use crate::sequential::Finding;
    let k = &s.comparison;
    let unit = c.unit.clone().unwrap_or_default();
    let found = match k.finding {
        Finding::Worse => "worse",
        Finding::NotWorse => "not worse",
        Finding::NotYetKnown => "not yet known",
    };
    let mut out = format!(
        "{found}: canary {} vs baseline {}, {}; {} canary and {} baseline events in {}",
        unit.format(c.left_value),
        unit.format(c.right_value),
        interval(c, s),
        k.canary_n,
        k.baseline_n,
        Span(s.since).human()
    );
    if let Some(why) = &s.split_off {
        out += &format!("; {why}");
    } else if k.finding == Finding::NotYetKnown {
        out += &match s.decision_in {
            Some(ms) => format!(
                "; a decision in about {} at this rate",
                Span(ms.max(60_000)).human()
            ),
            None if !k.estimable() => "; too early to say when a decision comes".to_string(),
            None => "; no decision in sight at this rate".to_string(),
        };
    }
    out
}

impl GateStatus {
    /// Why there is no data, or the observed values against the thresholds.
    pub fn observed(&self) -> String {
        match &self.reason {
            // A comparison not yet concluded says how far it has come.
            Some(_) if self.verdict == Verdict::NotYetKnown && !self.comparisons.is_empty() => {
                observed(&self.comparisons)
            }
            Some(reason) => reason.clone(),
            None => observed(&self.comparisons),
        }
    }

    /// `held 1h`, or `held 41m of 1h, needs 19m`.
    /// "warning: does not block" for a gate that is shown and recorded but holds nothing
    /// back; nothing for one that blocks.
    pub fn blocking_note(&self) -> Option<String> {
        (!self.blocks).then(|| {
            let word = match self.severity {
                crate::plan::Severity::Info => "info",
                _ => "warning",
            };
            format!("{word}: does not block")
        })
    }

    pub fn held_text(&self) -> String {
        if self.cycles > 0 {
            return format!(
                "{} of {} windows passed{}",
                self.cycles_passed,
                self.cycles,
                if self.held() { "" } else { " in a row" }
            );
        }
        // Holds count at one stage's traffic: say which.
        let at = self
            .traffic
            .filter(|_| self.guards_current)
            .map(|t| format!(" at {t}%"))
            .unwrap_or_default();
        if self.held() {
            format!("held {}{at}", self.held_for.human())
        } else {
            format!(
                "held {} of {}{at}, needs {}",
                self.held_for.human(),
                self.hold.human(),
                self.needs.human()
            )
        }
    }
}

impl TriggerStatus {
    /// `FIRED`, `BREACHING`, `OVER, NOT ARMED`, `NO DATA` or `QUIET`. A trigger that is not
    /// armed in this stage cannot act, so its condition being true is not called a breach.
    pub fn word(&self) -> &'static str {
        match (self.fired, self.verdict) {
            (true, _) => "FIRED",
            (false, Verdict::Pass) if self.armed => "BREACHING",
            (false, Verdict::Pass) => "OVER, NOT ARMED",
            (false, Verdict::NoData) => "NO DATA",
            (false, Verdict::NotYetKnown) => "NOT YET KNOWN",
            _ => "QUIET",
        }
    }

    /// Whether the word means trouble (drawn red): only what can act, or has.
    pub fn alarming(&self) -> bool {
        self.fired || (self.armed && self.verdict == Verdict::Pass)
    }

    /// Why there is no data, or the values the condition reads (`p95(latency_ms) 424ms`),
    /// without the comparison: a trigger's comparison is its alarm line, and "424ms > 900ms"
    /// beside a quiet trigger reads as a false statement.
    pub fn observed(&self) -> String {
        if self.comparisons.iter().any(|c| c.sequential.is_some()) {
            // A comparison's interval says where it stands without claiming a breach.
            return observed(&self.comparisons);
        }
        if let Some(reason) = &self.reason {
            return reason.clone();
        }
        self.comparisons
            .iter()
            .map(|c| {
                let unit = c.unit.clone().unwrap_or_default();
                format!("{} {}", c.left, unit.format(c.left_value))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What the trigger does and when: `kills past 900ms for 10m`, `true for 30s of 2m, then
    /// kills`, or `not armed in this stage`.
    pub fn state_text(&self) -> String {
        let (verb, done) = match self.action {
            crate::plan::TriggerAction::Kill => ("kills", "killed"),
            crate::plan::TriggerAction::StepBack => ("steps back", "stepped back"),
            crate::plan::TriggerAction::Alert => ("alerts", "alerted"),
        };
        if !self.armed {
            format!("not armed in this stage ({verb} {})", self.limits())
        } else if self.fired {
            format!("{done}: {} for {}", self.limits(), self.for_.human())
        } else if self.true_for > Span(0) {
            format!(
                "true for {} of {}, then {verb}",
                self.true_for.human(),
                self.for_.human()
            )
        } else if self.for_ > Span(0) {
            format!("{verb} {} for {}", self.limits(), self.for_.human())
        } else {
            format!("{verb} {}", self.limits())
        }
    }

    /// Where the alarm lines are, in words: `past 900ms`, or with several comparisons each
    /// named: `p95(latency_ms) past 900ms and error_rate past 5%`.
    fn limits(&self) -> String {
        let one = self.comparisons.len() == 1;
        self.comparisons
            .iter()
            .map(|c| {
                let unit = c.unit.clone().unwrap_or_default();
                let direction = match c.op.as_str() {
                    ">" => "past",
                    ">=" => "at or past",
                    "<" => "below",
                    "<=" => "at or below",
                    "==" => "at",
                    _ => "away from",
                };
                // A limit with no value yet (a baseline not read) is named by its expression.
                let right = match c.right_value {
                    Some(_) => unit.format(c.right_value),
                    None => c.right.clone(),
                };
                let limit = format!("{direction} {right}");
                if one {
                    limit
                } else {
                    format!("{} {limit}", c.left)
                }
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// What the runbook says to do now: each failing gate that guards the current stage and
/// each alarming trigger, with the plan's guidance for it, where the plan gives some.
pub fn guidance_now<'a>(
    plan: &'a crate::plan::Plan,
    gates: &[GateStatus],
    triggers: &[TriggerStatus],
) -> Vec<Advice<'a>> {
    let failing = gates
        .iter()
        .filter(|g| g.guards_current && g.verdict == Verdict::Fail)
        .filter_map(|g| {
            let gate = plan.gates.iter().find(|p| p.id == g.id)?;
            Some(Advice {
                id: &gate.id,
                title: &gate.title,
                guidance: &gate.guidance,
            })
        });
    let alarming = triggers.iter().filter(|t| t.alarming()).filter_map(|t| {
        let trigger = plan.triggers.iter().find(|p| p.id == t.id)?;
        Some(Advice {
            id: &trigger.id,
            title: &trigger.title,
            guidance: &trigger.guidance,
        })
    });
    failing
        .chain(alarming)
        .filter(|a| !a.guidance.is_empty())
        .collect()
}

/// One gate's or trigger's guidance that applies now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Advice<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub guidance: &'a crate::plan::Guidance,
}

/// What the plan says to do after a kill, for the top of the page: the killing trigger's
/// response, the checklists a resume needs (each item's state since the kill), and who may
/// resume once they are done.
#[derive(Debug, Clone, PartialEq)]
pub struct AfterKill {
    /// The response the plan gives for the trigger that killed it, if a trigger did.
    pub respond: Option<String>,
    /// Each list required to resume: its title and its items, done since the kill or not.
    pub lists: Vec<(String, Vec<(String, bool)>)>,
    /// The titles of the roles that may resume.
    pub resumers: Vec<String>,
}

impl AfterKill {
    pub fn open(&self) -> usize {
        self.lists
            .iter()
            .flat_map(|(_, items)| items)
            .filter(|(_, done)| !done)
            .count()
    }

    /// "A lead may resume once the 4 open items are checked." / "A lead may resume now."
    pub fn resume_line(&self) -> String {
        let who = match self.resumers.as_slice() {
            [] => "Nobody".to_string(),
            [one] => format!("A {one}"),
            many => format!("A {}", many.join(" or ")),
        };
        match self.open() {
            0 => format!("{who} may resume now."),
            1 => format!("{who} may resume once the 1 open item is checked."),
            n => format!("{who} may resume once the {n} open items are checked."),
        }
    }
}

/// `None` unless the rollout is killed and its plan says something to do after (a response
/// for the trigger that killed it, or lists a resume needs): the stage bar already says who
/// killed it and why.
pub fn after_kill(
    plan: &crate::plan::Plan,
    state: &crate::rollout::RolloutState,
) -> Option<AfterKill> {
    let killed = state.killed.as_ref()?;
    let respond = killed
        .by
        .name
        .strip_prefix("trigger ")
        .and_then(|id| plan.triggers.iter().find(|t| t.id == id))
        .and_then(|t| t.guidance.action.clone());
    let lists = plan
        .checklists
        .iter()
        .filter(|l| l.required_to_resume)
        .map(|l| {
            let items = l
                .items
                .iter()
                .map(|i| (i.text.clone(), state.item_done(l, i, killed.at)))
                .collect();
            (l.title.clone(), items)
        })
        .collect();
    let resumers = plan
        .permissions
        .resume
        .iter()
        .map(|r| plan.role_title(r).to_string())
        .collect();
    let after = AfterKill {
        respond,
        lists,
        resumers,
    };
    (after.respond.is_some() || !after.lists.is_empty()).then_some(after)
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
        assert_eq!((t.word(), t.alarming()), ("QUIET", false));
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
            sequential: None,
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
            sequential: None,
        };
        assert_eq!(observed(&[ratio]), "rate(error) = 0.4% <= 0.75%");
        assert_eq!(Unit::Ratio.format(Some(0.246)), "24.6%");
        assert_eq!(Unit::Own("GiB".into()).format(Some(3.2)), "3.20 GiB");
        assert_eq!(Unit::Ms.format(None), "no data");
    }

    /// Guidance shows for a failing gate that guards the stage and for an alarming trigger,
    /// never for a passing gate or one that guards another stage.
    #[test]
    fn guidance_applies_to_what_fails_now() {
        let text = "[rollout]\nid = \"g\"\ntitle = \"G\"\n[[stage]]\nid = \"a\"\ntraffic = 10\n\
             [[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n\
             [[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms) <= 1ms\"\nwindow = \"1m\"\nhold = \"1m\"\naction = \"step back\"\n\
             [[trigger]]\nid = \"slow\"\nexpr = \"p95(latency_ms) > 2ms\"\nfor = \"1m\"\naction = \"alert\"\nrespond = \"page on-call\"\n";
        let plan = crate::plan::parse("g.toml", text).unwrap();
        let mut gates = crate::gates::not_yet_evaluated(&plan, Some("a"));
        gates[0].verdict = Verdict::Fail;
        gates[0].guards_current = true;
        let actions = |gates: &[GateStatus], triggers: &[TriggerStatus]| {
            guidance_now(&plan, gates, triggers)
                .into_iter()
                .map(|a| {
                    (
                        a.id.to_string(),
                        a.guidance.action.clone().unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            actions(&gates, &[]),
            [("p95".to_string(), "step back".to_string())]
        );
        gates[0].guards_current = false;
        assert!(actions(&gates, &[]).is_empty());
        gates[0].guards_current = true;
        gates[0].verdict = Verdict::Pass;
        assert!(actions(&gates, &[]).is_empty());
    }
}

#[cfg(test)]
mod trigger_words {
    use super::after_kill;
    use crate::expr::CmpTrace;
    use crate::gates::{TriggerStatus, Verdict};
    use crate::plan::{Severity, TriggerAction};
    use crate::time::Span;
    use crate::unit::Unit;

    fn trigger(verdict: Verdict, armed: bool, fired: bool, true_for: i64) -> TriggerStatus {
        TriggerStatus {
            id: "slow".into(),
            title: "Slow".into(),
            expr: "p95(latency_ms) > 900".into(),
            verdict,
            reason: None,
            comparisons: vec![CmpTrace {
                left: "p95(latency_ms)".into(),
                left_value: Some(if verdict == Verdict::Pass {
                    1200.0
                } else {
                    424.0
                }),
                op: ">".into(),
                right: "900".into(),
                right_value: Some(900.0),
                holds: Some(verdict == Verdict::Pass),
                unit: Some(Unit::parse("ms")),
                sequential: None,
            }],
            action: TriggerAction::Kill,
            severity: Severity::Critical,
            for_: Span(600_000),
            true_for: Span(true_for),
            armed,
            fired,
        }
    }

    /// A quiet trigger never reads as a comparison that is false ("424ms > 900ms"): it says
    /// its value, and what it does past which line.
    #[test]
    fn a_quiet_trigger_says_what_it_would_do() {
        let quiet = trigger(Verdict::Fail, true, false, 0);
        assert_eq!(quiet.word(), "QUIET");
        assert!(!quiet.alarming());
        assert_eq!(quiet.observed(), "p95(latency_ms) 424ms");
        assert_eq!(quiet.state_text(), "kills past 900ms for 10m");
    }

    #[test]
    fn breaching_fired_and_unarmed_triggers_say_so() {
        let breaching = trigger(Verdict::Pass, true, false, 30_000);
        assert_eq!(breaching.word(), "BREACHING");
        assert!(breaching.alarming());
        assert_eq!(breaching.state_text(), "true for 30s of 10m, then kills");
        let fired = trigger(Verdict::Pass, true, true, 600_000);
        assert_eq!(fired.word(), "FIRED");
        assert_eq!(fired.state_text(), "killed: past 900ms for 10m");
        let unarmed = trigger(Verdict::Pass, false, false, 0);
        assert_eq!(unarmed.word(), "OVER, NOT ARMED");
        assert!(!unarmed.alarming());
        assert_eq!(
            unarmed.state_text(),
            "not armed in this stage (kills past 900ms)"
        );
        // A limit not known yet is named by its expression, never "past no data".
        let mut baseline = trigger(Verdict::NoData, true, false, 0);
        baseline.comparisons[0].right = "at_entry(p95(latency_ms))".into();
        baseline.comparisons[0].right_value = None;
        assert_eq!(
            baseline.state_text(),
            "kills past at_entry(p95(latency_ms)) for 10m"
        );
    }

    /// After a trigger's kill the page leads with the trigger's response, the lists a resume
    /// needs (only checks since the kill count) and who may resume.
    #[test]
    fn after_a_kill_the_plan_says_what_to_do_and_who_may_resume() {
        use crate::rollout::{Action, Actor, Request, apply};
        let plan =
            crate::plan::parse("lens-v1.toml", include_str!("../../plans/lens-v1.toml")).unwrap();
        let mut state = crate::rollout::RolloutState::new();
        assert_eq!(after_kill(&plan, &state), None);
        state.phase = crate::rollout::Phase::Running;
        state.stage = Some(0);
        let kill = Request {
            actor: Actor {
                name: "trigger error-storm".into(),
                role: crate::role::Role::System,
                ..Default::default()
            },
            action: Action::Kill,
            reason: Some("errors past 10%".into()),
            at: 1_000,
        };
        let killed = apply(&plan, &state, &kill, &Default::default()).unwrap().0;
        let after = after_kill(&plan, &killed).unwrap();
        assert!(after.respond.is_some(), "{after:?}");
        let (title, items) = &after.lists[0];
        assert_eq!(title, "After kill switch activation");
        assert_eq!(items.len(), 6);
        assert!(items.iter().all(|(_, done)| !done));
        assert_eq!(after.resumers, ["lead"]);
        assert_eq!(
            after.resume_line(),
            "A lead may resume once the 6 open items are checked."
        );
        // A person's kill in a plan with no after-kill list: the stage bar says it all.
        let spiralogic = crate::plan::parse(
            "spiralogic.toml",
            include_str!("../../plans/spiralogic.toml"),
        )
        .unwrap();
        let mut by_hand = kill.clone();
        by_hand.actor.name = "olga".into();
        by_hand.actor.role = crate::role::Role::Operator;
        let killed = apply(&spiralogic, &state, &by_hand, &Default::default())
            .unwrap()
            .0;
        assert_eq!(after_kill(&spiralogic, &killed), None);
    }
}
