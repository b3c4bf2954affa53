//! The flags published now and where each comes from (the stage that set it, unchanged since
//! an earlier stage, the rollback after a kill): what services read at `/flags` and OFREP,
//! on one line under the stage bar, the page's and the wall's; then how far the fleet of
//! instances reading them has applied them ("kill applied by 11 of 12 instances, web-7
//! still on version 41 for 38s"), in red while a kill is not applied everywhere.

use cutover_core::actuate::{FlagSource, in_force};
use cutover_core::snapshot::{Snapshot, Tick};
use leptos::prelude::*;

#[component]
pub fn FlagsInForce(
    #[prop(into)] snapshot: Signal<Option<Snapshot>>,
    /// The latest tick: its time moves "still on version 41 for 38s" every second.
    #[prop(into)]
    tick: Signal<Option<Tick>>,
) -> impl IntoView {
    move || {
        let s = snapshot.get()?;
        let flags = in_force(&s.plan, &s.state);
        let now = tick
            .with(|t| t.as_ref().map(|t| t.frame.at))
            .unwrap_or(s.at)
            .max(s.at);
        // Before the start nothing is published for the fleet to apply.
        let started = s.state.phase != cutover_core::rollout::Phase::NotStarted;
        let confirmation = s.confirmation.clone().filter(|_| started).map(|c| {
            let class = match (c.complete(), c.killed) {
                (true, _) => "confirmation applied",
                (false, true) => "confirmation lagging kill",
                (false, false) => "confirmation lagging",
            };
            view! { <p class=class data-testid="confirmation">{c.words(now)}</p> }
        });
        if flags.is_empty() && confirmation.is_none() {
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
                {confirmation}
            </section>
        })
    }
}
