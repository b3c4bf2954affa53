//! The record behind a chart marker: who did what and why, and the evidence it was decided on
//! (each gate's values against its thresholds, the triggers breaching, the checklists still
//! open), as stored when it was taken, not as things are now.

use cutover_core::audit::AuditEntry;
use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;

#[component]
pub fn Record(
    #[prop(into)] entries: Signal<Vec<AuditEntry>>,
    /// The entry to show (`seq`), set by a marker; closing clears it.
    shown: RwSignal<Option<i64>>,
    /// For the plan's titles of its own roles.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
) -> impl IntoView {
    move || {
        let seq = shown.get()?;
        let entry = entries.with(|e| e.iter().find(|e| e.seq == seq).cloned())?;
        let r = &entry.record;
        let what =
            cutover_core::chart::marker(r).map_or_else(|| r.action.name().to_string(), |m| m.label);
        let head = format!(
            "{} {what} by {} ({})",
            crate::clock::hms(r.at),
            r.actor.name,
            snapshot.with(|s| s.as_ref().map_or_else(
                || r.actor.role.as_str().to_string(),
                |s| s.plan.role_title(&r.actor.role).to_string()
            ))
        );
        let reason = r.reason.clone().map(|r| format!("“{r}”"));
        let rows = entry
            .evidence
            .gates()
            .iter()
            .map(|g| {
                view! {
                    <tr>
                        <td class="gate-title">{g.id.clone()}</td>
                        <td>{g.verdict.word()}</td>
                        <td class="gate-observed">{g.observed()}</td>
                        <td class="gate-held">{g.held_text()} ", " {g.samples} " samples"</td>
                    </tr>
                }
            })
            .collect_view();
        let breaching: Vec<String> = entry
            .evidence
            .triggers_breaching()
            .map(|t| t.id.clone())
            .collect();
        let open: Vec<String> = entry
            .evidence
            .checklists_open()
            .map(|(id, n)| format!("{id} ({n} open)"))
            .collect();
        Some(view! {
            <section class="panel record" data-testid="record">
                <h2>"Record behind the marker"</h2>
                <p><strong>{head}</strong> " " {reason}</p>
                <table class="gates"><tbody>{rows}</tbody></table>
                <p>"Triggers breaching then: " {if breaching.is_empty() { "none".to_string() } else { breaching.join(", ") }}</p>
                <p>"Checklists open then: " {if open.is_empty() { "none".to_string() } else { open.join(", ") }}</p>
                <button data-testid="record-close" on:click=move |_| shown.set(None)>"Close"</button>
            </section>
        })
    }
}
