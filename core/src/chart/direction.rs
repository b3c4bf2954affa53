//! Which way is good for a metric, from what the plan asks of it: a gate that keeps
//! `rate(error) <= 5%`, or a trigger that fires on `rate(error) > 10%`, makes lower better;
//! `rate(cache_hit) >= 80%` makes higher better. Charts, headline numbers and the wall rank
//! failure rates first by this, not by what a metric happens to be called.

use crate::expr::{self, CmpOp, Kind};
use crate::plan::Plan;

use super::limits::{LimitKind, limit_sources};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// A failure rate, a latency: the plan bounds it from above.
    Lower,
    /// A success rate, a hit ratio: the plan bounds it from below.
    Higher,
}

/// Which way is better for `metric`, when the plan's gates and triggers agree on one; `None`
/// when they say nothing about it, or bound it on both sides (a band).
pub fn better(plan: &Plan, metric: &str) -> Option<Better> {
    let (mut lower, mut higher) = (false, false);
    for (_, _, text, kind) in limit_sources(plan) {
        let Ok(e) = expr::parse(text) else {
            continue;
        };
        // A gate says what healthy is; a trigger fires on the opposite.
        let healthy = kind == LimitKind::Gate;
        e.visit(&mut |node| {
            let Some((op, lhs, rhs)) = node.plain_comparison() else {
                return;
            };
            let (op, lhs, rhs) = (&op, &lhs, &rhs);
            if lhs.read().is_none_or(|r| r.metric != metric) {
                return;
            }
            let zero = matches!(rhs.kind, Kind::Number(n) if n == 0.0);
            let (below, above) = match op {
                CmpOp::Le | CmpOp::Lt => (true, false),
                CmpOp::Ge | CmpOp::Gt => (false, true),
                // `rate(shadow_timeout) == 0`: none is the healthy amount.
                CmpOp::Eq if zero && healthy => (true, false),
                _ => (false, false),
            };
            let (below, above) = if healthy {
                (below, above)
            } else {
                (above, below)
            };
            lower |= below;
            higher |= above;
        });
    }
    match (lower, higher) {
        (true, false) => Some(Better::Lower),
        (false, true) => Some(Better::Higher),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(gates: &[&str], triggers: &[&str]) -> Plan {
        let mut text = String::from(
            "[rollout]\nid = \"d\"\ntitle = \"D\"\n[[stage]]\nid = \"a\"\ntraffic = 10\n\
             [[metric]]\nid = \"oops\"\nkind = \"ratio\"\n[[metric]]\nid = \"good\"\nkind = \"ratio\"\n",
        );
        for (i, g) in gates.iter().enumerate() {
            text +=
                &format!("[[gate]]\nid = \"g{i}\"\nexpr = '{g}'\nwindow = \"1m\"\nhold = \"1m\"\n");
        }
        for (i, t) in triggers.iter().enumerate() {
            text += &format!(
                "[[trigger]]\nid = \"t{i}\"\nexpr = '{t}'\nfor = \"1m\"\naction = \"alert\"\n"
            );
        }
        crate::plan::parse("d.toml", &text).unwrap()
    }

    #[test]
    fn gates_and_triggers_say_which_way_is_good() {
        let p = plan(&["rate(oops) <= 5%", "rate(good) >= 80%"], &[]);
        assert_eq!(better(&p, "oops"), Some(Better::Lower));
        assert_eq!(better(&p, "good"), Some(Better::Higher));
        // A trigger fires on the bad side.
        let p = plan(&[], &["rate(oops) > 10%", "rate(good) < 50%"]);
        assert_eq!(better(&p, "oops"), Some(Better::Lower));
        assert_eq!(better(&p, "good"), Some(Better::Higher));
        // None healthy.
        assert_eq!(
            better(&plan(&["rate(oops) == 0"], &[]), "oops"),
            Some(Better::Lower)
        );
    }

    #[test]
    fn silence_or_a_band_is_no_direction() {
        let p = plan(&["rate(oops) >= 20% and rate(oops) <= 30%"], &[]);
        assert_eq!(better(&p, "oops"), None);
        assert_eq!(better(&p, "good"), None);
    }
}
