//! The flags published now and where each comes from (the stage that set it, unchanged since
//! an earlier stage, the rollback after a kill): what services read at `/flags` and OFREP,
//! on one line under the stage bar, the page's and the wall's.

use cutover_core::actuate::{FlagSource, in_force};
use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;

#[component]
pub fn FlagsInForce(#[prop(into)] snapshot: Signal<Option<Snapshot>>) -> impl IntoView {
    move || {
        let s = snapshot.get()?;
        let flags = in_force(&s.plan, &s.state);
        if flags.is_empty() {
            return None;
        }
        let items = flags
            .into_iter()
            .map(|f| {
                let class = match f.source {
                    FlagSource::Rollback | FlagSource::StageRollback(_) => "flag rollback",
                    FlagSource::Stage(_) => "flag changed",
                    FlagSource::Since(_) => "flag",
                    FlagSource::Adjusted(_) => "flag adjusted",
                };
                view! {
                    <li class=class data-testid=format!("flag-{}", f.key)>
                        <code>{format!("{} = {}", f.key, f.value)}</code>
                        <span class="muted">{format!(" {}", f.source.words())}</span>
                    </li>
                }
            })
            .collect_view();
        Some(view! {
            <section class="flags-in-force" data-testid="flags-in-force" aria-label="Flags in force">
                <span class="label">"Flags in force"</span>
                <ul>{items}</ul>
            </section>
        })
    }
}
