//! After a kill, the page leads with what the plan says to do: the killing trigger's response,
//! the checklist a resume needs (checked since the kill or not), and who may resume. The
//! checkboxes are in the checklists below; this says what is left, where the eye is.

use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;

#[component]
pub fn AfterKill(#[prop(into)] snapshot: Signal<Option<Snapshot>>) -> impl IntoView {
    let after = Memo::new(move |_| {
        snapshot.with(|s| {
            s.as_ref()
                .and_then(|s| cutover_core::describe::after_kill(&s.plan, &s.state))
        })
    });
    move || {
        after.get().map(|a| {
            let (resume, open) = (a.resume_line(), a.open());
            view! {
                <section class="panel after-kill" data-testid="after-kill" aria-label="After the kill">
                    <h2>"Killed: what the plan says to do now"</h2>
                    {a.respond.map(|r| view! { <p class="after-kill-respond" data-testid="after-kill-respond">{r}</p> })}
                    {a.lists.into_iter().map(|(title, items)| view! {
                        <h3>{title}</h3>
                        <ul class="after-kill-items">
                            {items.into_iter().map(|(text, done)| view! {
                                <li class:done=done>
                                    <span class="mark" aria-hidden="true">{if done { "✓" } else { "○" }}</span>" "
                                    {text}{(!done).then_some(" (open)")}
                                </li>
                            }).collect_view()}
                        </ul>
                    }).collect_view()}
                    <p class="after-kill-resume" data-testid="after-kill-resume">{resume}{(open > 0).then_some(" Tick the items in the checklists below.")}</p>
                </section>
            }
        })
    }
}
