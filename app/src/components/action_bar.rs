//! The buttons that change a rollout, shown only to roles the plan allows (the server refuses
//! the rest anyway). The kill switch asks for a reason first. A refusal from the server is
//! shown as it came.

use cutover_core::role::Role;
use cutover_core::rollout::Phase;
use cutover_core::snapshot::Snapshot;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Me};

/// Start, progress, pause, resume and the kill switch.
#[component]
pub fn ActionBar(
    /// The signed-in user.
    me: Me,
    /// The latest snapshot.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let killing = RwSignal::new(false);
    let reason = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let role = me.role;
    let csrf = StoredValue::new(me.csrf.clone());
    let may = move |pick: fn(&cutover_core::plan::Permissions) -> &Vec<Role>| {
        snapshot
            .get()
            .is_some_and(|s| pick(&s.plan.permissions).contains(&role))
    };
    let phase = move || snapshot.get().map(|s| s.state.phase);
    let id = move || snapshot.get().map(|s| s.plan.id).unwrap_or_default();
    let run = move |path: &'static str, with_reason: Option<String>| {
        let rollout = id();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api::act(&rollout, path, with_reason, &csrf.get_value()).await;
            busy.set(false);
            match result {
                Ok(()) => {
                    killing.set(false);
                    reason.set(String::new());
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let confirm_kill = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        run("kill", Some(reason.get_untracked()));
    };
    view! {
        <section class="panel actions" aria-label="Actions">
            <Show when=move || may(|p| &p.progress) && phase() == Some(Phase::NotStarted)>
                <button data-testid="start" disabled=move || busy.get() on:click=move |_| run("start", None)>"Start"</button>
            </Show>
            <Show when=move || may(|p| &p.progress) && phase() == Some(Phase::Running)>
                <button data-testid="progress" disabled=move || busy.get() on:click=move |_| run("progress", None)>"Progress to next stage"</button>
            </Show>
            <Show when=move || may(|p| &p.pause) && phase() == Some(Phase::Running)>
                <button data-testid="pause" disabled=move || busy.get() on:click=move |_| run("pause", None)>"Pause"</button>
            </Show>
            <Show when=move || may(|p| &p.resume) && matches!(phase(), Some(Phase::Paused | Phase::Killed))>
                <button data-testid="resume" disabled=move || busy.get() on:click=move |_| {
                    let why = (phase() == Some(Phase::Killed)).then(|| "resumed from the dashboard".to_string());
                    run("resume", why)
                }>"Resume"</button>
            </Show>
            <Show when=move || may(|p| &p.kill) && !matches!(phase(), Some(Phase::Killed | Phase::Completed) | None)>
                <button class="kill" data-testid="kill" on:click=move |_| killing.set(true)>"KILL SWITCH"</button>
            </Show>
            <Show when=move || killing.get()>
                <form class="kill-dialog" role="dialog" aria-modal="true" aria-labelledby="kill-title" on:submit=confirm_kill>
                    <h2 id="kill-title">"Kill this rollout? Traffic goes to 0%."</h2>
                    <label for="kill-reason">"Reason (required, goes in the audit log)"</label>
                    <textarea id="kill-reason" data-testid="kill-reason" required bind:value=reason></textarea>
                    <div class="dialog-buttons">
                        <button type="submit" class="kill" data-testid="kill-confirm" disabled=move || busy.get() || reason.get().trim().is_empty()>"Kill now"</button>
                        <button type="button" data-testid="kill-cancel" on:click=move |_| killing.set(false)>"Cancel"</button>
                    </div>
                </form>
            </Show>
            <p class="error" role="alert" data-testid="action-error">{move || error.get()}</p>
        </section>
    }
}
