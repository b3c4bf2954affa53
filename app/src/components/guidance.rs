//! What the runbook says to do, where the decision is made: under a failing gate or a firing
//! trigger on the board, and as one action line per item on the wall. Which items apply is
//! core's call (`describe::guidance_now`); this only draws them.

use cutover_core::describe::guidance_now;
use cutover_core::plan::Guidance;
use cutover_core::snapshot::{Snapshot, Tick};
use leptos::prelude::*;

/// A board row under gate or trigger `id` with its cause, check, action, owner and link.
pub fn guidance_row(id: &str, g: &Guidance, columns: u8) -> impl IntoView + use<> {
    let part = |label: &'static str, text: Option<String>, class: &'static str| {
        text.map(|t| view! { <span class=class><span class="guidance-label">{label}</span>" "{t}</span> })
    };
    // Only http(s) links are links (the plan check refuses other schemes); a path is text.
    let link = g.runbook.clone().map(|r| {
        if r.starts_with("https://") || r.starts_with("http://") {
            view! { <a href=r.clone() rel="noopener noreferrer" target="_blank">"runbook"</a> }
                .into_any()
        } else {
            view! { <span>{format!("runbook: {r}")}</span> }.into_any()
        }
    });
    view! {
        <tr class="guidance" data-testid=format!("guidance-{id}")>
            <td colspan=columns>
                {part("Action:", g.action.clone(), "guidance-action")}
                {part("Cause:", g.cause.clone(), "guidance-part")}
                {part("Check:", g.check.clone(), "guidance-part guidance-check")}
                {part("Owner:", g.owner.clone(), "guidance-part")}
                {link}
            </td>
        </tr>
    }
}

/// The action lines for now, for the wall: "title → action" for every failing gate and
/// firing trigger whose plan says what to do.
#[component]
pub fn GuidanceNow(
    #[prop(into)] snapshot: Signal<Option<Snapshot>>,
    #[prop(into)] tick: Signal<Option<Tick>>,
) -> impl IntoView {
    let lines = Memo::new(move |_| {
        let (Some(s), Some(t)) = (snapshot.get(), tick.get()) else {
            return Vec::new();
        };
        guidance_now(&s.plan, &t.gates, &t.triggers)
            .into_iter()
            .filter_map(|a| {
                a.guidance
                    .action
                    .clone()
                    .map(|act| (a.title.to_string(), act))
            })
            .collect::<Vec<_>>()
    });
    view! {
        <Show when=move || !lines.get().is_empty()>
            <section class="panel guidance-now" data-testid="guidance-now" aria-label="What to do now">
                <h2>"What to do now"</h2>
                <ul>
                    {move || lines.get().into_iter().map(|(title, action)| view! {
                        <li><strong>{title}</strong>" → "{action}</li>
                    }).collect_view()}
                </ul>
            </section>
        </Show>
    }
}
