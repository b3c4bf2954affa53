//! What fails now, near the top of the rollout page: every failing gate that guards this
//! stage and every trigger that breaches or fired, with its value and how long, so the eye
//! finds them on a laptop's first screen instead of below the charts. The full board is
//! still below; this only repeats what needs eyes. Nothing when all is well.

use cutover_core::gates::Verdict;
use cutover_core::snapshot::Tick;
use leptos::prelude::*;

/// One thing failing: its test id, the word, its title, its value and how long.
type Failing = (String, &'static str, String, String, String);

#[component]
pub fn FailingNow(#[prop(into)] tick: Signal<Option<Tick>>) -> impl IntoView {
    let items = Memo::new(move |_| {
        let Some(t) = tick.get() else {
            return Vec::new();
        };
        let gates = t
            .gates
            .iter()
            .filter(|g| g.guards_current && g.verdict == Verdict::Fail)
            .map(|g| {
                (
                    format!("failing-gate-{}", g.id),
                    g.verdict.word(),
                    g.title.clone(),
                    g.observed(),
                    match g.blocking_note() {
                        Some(note) => format!("{} ({note})", g.held_text()),
                        None => g.held_text(),
                    },
                )
            });
        let triggers = t.triggers.iter().filter(|tr| tr.alarming()).map(|tr| {
            (
                format!("failing-trigger-{}", tr.id),
                tr.word(),
                tr.title.clone(),
                tr.observed(),
                tr.state_text(),
            )
        });
        gates.chain(triggers).collect::<Vec<Failing>>()
    });
    view! {
        <Show when=move || !items.get().is_empty()>
            <section class="panel failing-now" data-testid="failing-now" aria-label="Failing now">
                <h2>"Failing now"</h2>
                <ul>
                    {move || items.get().into_iter().map(|(id, word, title, observed, state)| view! {
                        <li data-testid=id>
                            <span class="verdict fail">{word}</span>" "
                            <strong>{title}</strong>" "
                            <span class="gate-observed">{observed}</span>
                            " · "{state}
                        </li>
                    }).collect_view()}
                </ul>
            </section>
        </Show>
    }
}
