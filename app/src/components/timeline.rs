//! The audit log, newest first: who did what, in which role, why, and what changed.

use leptos::prelude::*;
use serde_json::Value;

fn describe(state: &Value) -> String {
    let phase = state["phase"].as_str().unwrap_or("").replace('_', " ");
    match state["stage"].as_str() {
        Some(stage) => format!("{phase} at {stage} ({}%)", state["traffic"]),
        None => format!("{phase} ({}%)", state["traffic"]),
    }
}

fn entry(e: Value) -> impl IntoView {
    let action = e["action"]["action"].as_str().unwrap_or("?").to_string();
    let target = ["gate", "trigger", "list", "item"]
        .iter()
        .filter_map(|k| e["action"][k].as_str())
        .collect::<Vec<_>>()
        .join("/");
    let who = format!(
        "{} ({})",
        e["actor"]["name"].as_str().unwrap_or("?"),
        e["actor"]["role"].as_str().unwrap_or("?")
    );
    let reason = e["reason"]
        .as_str()
        .map(|r| format!("“{r}”"))
        .unwrap_or_default();
    let change = format!("{} → {}", describe(&e["before"]), describe(&e["after"]));
    let class = format!("event {action}");
    view! {
        <li class=class>
            <span class="when">{crate::clock::hms(e["at"].as_i64().unwrap_or(0))}</span>
            <span class="what"><strong>{action}</strong> " " {target} " by " {who} " " {reason}</span>
            <span class="change">{change}</span>
        </li>
    }
}

/// The audit log of one rollout, as the dashboard fetched it.
#[component]
pub fn Timeline(
    /// Newest first; refetched by the dashboard whenever the state version changes.
    #[prop(into)]
    entries: Signal<Vec<Value>>,
) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"Timeline"</h2>
            <ol class="timeline" data-testid="timeline">
                {move || entries.get().into_iter().map(entry).collect::<Vec<_>>()}
            </ol>
        </section>
    }
}
