//! The URL scheme of the API's actions, written once: the server routes by these patterns,
//! and the CLI and the app build their requests from them.

/// Where every API route lives.
pub const API: &str = "/api";

/// An action posted on a rollout, by where it is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionRoute {
    Start,
    Progress,
    Pause,
    Resume,
    Kill,
    StepBack,
    Close,
    Approve,
    /// `{list}`, `{item}`.
    Check,
    /// `{gate}`.
    Override,
    Schedule,
    /// A decision recorded: `{"decision": "proceed"|"extend"|"investigate", "reason": ...}`.
    Decide,
    /// `{alert}`: an open alert acknowledged.
    Ack,
    /// `{flag}`: an `[[adjust]]` flag set within the stage: `{"value": ..., "reason": ...}`.
    Adjust,
}

impl ActionRoute {
    pub const ALL: [ActionRoute; 14] = [
        ActionRoute::Start,
        ActionRoute::Progress,
        ActionRoute::Pause,
        ActionRoute::Resume,
        ActionRoute::Kill,
        ActionRoute::StepBack,
        ActionRoute::Close,
        ActionRoute::Approve,
        ActionRoute::Check,
        ActionRoute::Override,
        ActionRoute::Schedule,
        ActionRoute::Decide,
        ActionRoute::Ack,
        ActionRoute::Adjust,
    ];

    /// The route under [`API`], with `{id}` for the rollout and the other parameters named.
    pub const fn pattern(self) -> &'static str {
        match self {
            ActionRoute::Start => "/rollouts/{id}/start",
            ActionRoute::Progress => "/rollouts/{id}/progress",
            ActionRoute::Pause => "/rollouts/{id}/pause",
            ActionRoute::Resume => "/rollouts/{id}/resume",
            ActionRoute::Kill => "/rollouts/{id}/kill",
            ActionRoute::StepBack => "/rollouts/{id}/step-back",
            ActionRoute::Close => "/rollouts/{id}/close",
            ActionRoute::Approve => "/rollouts/{id}/approvals",
            ActionRoute::Check => "/rollouts/{id}/checklists/{list}/items/{item}",
            ActionRoute::Override => "/rollouts/{id}/gates/{gate}/override",
            ActionRoute::Schedule => "/rollouts/{id}/schedule",
            ActionRoute::Decide => "/rollouts/{id}/decisions",
            ActionRoute::Ack => "/rollouts/{id}/alerts/{alert}/ack",
            ActionRoute::Adjust => "/rollouts/{id}/adjustments/{flag}",
        }
    }

    /// The path to post to: [`API`] and the pattern with `rollout`, then `params` in the
    /// pattern's order, each percent-encoded as one path segment.
    pub fn path(self, rollout: &str, params: &[&str]) -> String {
        let mut values = std::iter::once(rollout).chain(params.iter().copied());
        let mut out = String::from(API);
        for piece in self.pattern().split('/').skip(1) {
            out.push('/');
            if piece.starts_with('{') {
                out.push_str(&segment(values.next().unwrap_or_default()));
            } else {
                out.push_str(piece);
            }
        }
        out
    }
}

/// `s` as one URL path segment: unreserved characters kept, every other byte `%XX`.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_fill_the_pattern_in_order() {
        assert_eq!(
            ActionRoute::Kill.path("lens-v1", &[]),
            "/api/rollouts/lens-v1/kill"
        );
        assert_eq!(
            ActionRoute::Check.path("r", &["pre flight", "db/ok"]),
            "/api/rollouts/r/checklists/pre%20flight/items/db%2Fok"
        );
        assert_eq!(
            ActionRoute::Override.path("r", &["p95"]),
            "/api/rollouts/r/gates/p95/override"
        );
    }

    proptest! {
        /// Whatever the names, a path has exactly the pattern's segments, and each value
        /// decodes back to itself.
        #[test]
        fn any_names_stay_one_segment_each(a in ".{0,12}", b in ".{0,12}", c in ".{0,12}") {
            for route in ActionRoute::ALL {
                let path = route.path(&a, &[&b, &c]);
                let pieces: Vec<&str> = path.split('/').collect();
                prop_assert_eq!(pieces.len(), route.pattern().split('/').count() + 1);
                for (piece, pattern) in pieces[2..].iter().zip(route.pattern().split('/').skip(1)) {
                    if !pattern.starts_with('{') {
                        prop_assert_eq!(*piece, pattern);
                    }
                }
            }
        }
    }
}
