//! Plan texts the tests of every crate share (each includes this file with `#[path]`): one
//! preamble for the two-stage rollout most tests need, instead of a copy per test file.

/// A rollout `id` titled `title` with stages `canary` (10 %) and `ga` (100 %) and a
/// `latency_ms` distribution in ms, followed by `rest` (more metrics, gates, triggers).
#[allow(dead_code)]
pub fn two_stage_plan(id: &str, title: &str, rest: &str) -> String {
    format!(
        r#"
[rollout]
id = "{id}"
title = "{title}"

[[stage]]
id = "canary"
traffic = 10

[[stage]]
id = "ga"
traffic = 100

[[metric]]
id = "latency_ms"
kind = "distribution"
unit = "ms"
{rest}"#
    )
}
