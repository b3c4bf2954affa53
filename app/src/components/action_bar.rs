//! The buttons that change a rollout, shown only to roles the plan allows (the server refuses
//! the rest anyway). Start and Progress are disabled while something blocks them, with the
//! reasons in words (the same core rules the server applies); a permitted role may override a
//! gate with a typed reason, and approve a sign-off. The kill switch, and a resume after a
//! kill, ask for a reason first (the one reason dialog, as the override does).
//! A refusal from the server is shown as it came.

use cutover_core::role::Role;
use cutover_core::rollout::Phase;
use cutover_core::snapshot::{Snapshot, Tick};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Me};
use crate::components::reason_dialog::ReasonDialog;
use cutover_core::route::ActionRoute;

/// Start, progress, pause, resume, step back and the kill switch.
#[component]
pub fn ActionBar(
    /// The signed-in user.
    me: Me,
    /// The latest snapshot.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
    /// The latest tick: gate holds move every second, and so do the blockers.
    #[prop(into)]
    tick: Signal<Option<Tick>>,
) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    // Which reason dialog is open.
    let killing = RwSignal::new(false);
    let resuming = RwSignal::new(false);
    let stepping_back = RwSignal::new(false);
    let overriding = RwSignal::new(false);
    let deciding = RwSignal::new(false);
    let adjusting = RwSignal::new(false);
    let progressing = RwSignal::new(false);
    // What the last step did, in words ("entered beta (30%)").
    let notice = RwSignal::new(None::<String>);
    let adjust_flag = RwSignal::new(String::new());
    let adjust_value = RwSignal::new(String::new());
    // No decision until a lead picks one: a default would be recorded by a hurried Enter.
    let decision = RwSignal::new(String::new());
    let override_gate = RwSignal::new(String::new());
    let me_name = me.name.clone();
    let busy = RwSignal::new(false);
    let role = me.role;
    let holder = StoredValue::new(me.clone());
    let csrf = StoredValue::new(me.csrf.clone());
    let may = move |pick: fn(&cutover_core::plan::Permissions) -> &Vec<Role>| {
        snapshot
            .get()
            .is_some_and(|s| holder.with_value(|me| me.any_of(pick(&s.plan.permissions))))
    };
    let phase = move || snapshot.get().map(|s| s.state.phase);
    // "only a lead may record a decision": who may, for a role that may not.
    let only = move |pick: fn(&cutover_core::plan::Permissions) -> &Vec<Role>, verb: &str| {
        let s = snapshot.get()?;
        let titles: Vec<String> = pick(&s.plan.permissions)
            .iter()
            .map(|r| s.plan.role_title(r).to_string())
            .collect();
        let first = titles.first()?;
        let article = if first.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) {
            "an"
        } else {
            "a"
        };
        Some(format!("only {article} {} may {verb}", titles.join(" or ")))
    };
    // What blocks the next step now: the snapshot's state with the newest gate statuses.
    let blockers = Memo::new(move |_| {
        let Some(s) = snapshot.get() else {
            return Vec::new();
        };
        tick.with(|t| s.with_tick(t.as_ref())).blockers()
    });
    // A disabled button says why on hover, before it is pressed (the list below says all).
    let why_blocked = move |action: &str| {
        let blockers = blockers.get();
        let first = blockers.first()?;
        Some(match blockers.len() {
            1 => format!("{action} is blocked: {first}"),
            n => format!("{action} is blocked: {first} (and {} more below)", n - 1),
        })
    };
    // Gates guarding this stage that have not held: what an override could unblock.
    let unheld = Memo::new(move |_| {
        let gates = tick.get().map(|t| t.gates).unwrap_or_default();
        let overridden = snapshot
            .get()
            .map(|s| s.state.overrides)
            .unwrap_or_default();
        gates
            .into_iter()
            .filter(|g| {
                g.guards_current && g.blocks && !g.held() && !overridden.contains_key(&g.id)
            })
            .map(|g| g.id)
            .collect::<Vec<_>>()
    });
    // The sign-off for the next stage, if my role is one that signs it and I have not yet.
    let pending_signoff = Memo::new(move |_| {
        let s = snapshot.get()?;
        let next = match (s.state.phase, s.state.stage) {
            (Phase::NotStarted, _) => 0,
            (Phase::Running, Some(i)) => i + 1,
            _ => return None,
        };
        let stage = s.plan.stages.get(next)?;
        let signoff = s.plan.signoffs.iter().find(|o| o.stage == stage.id)?;
        let marks = s
            .state
            .approvals
            .get(&stage.id)
            .cloned()
            .unwrap_or_default();
        // Done for me when I approved, or, when each role signs once, when my role has.
        let mine = marks
            .iter()
            .any(|m| m.by.name == me_name || (signoff.each && m.by.role == role));
        let text = format!(
            "{}: {} of {} approvals{}",
            signoff.title,
            marks.len(),
            signoff.approvals,
            if marks.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    marks
                        .iter()
                        .map(|m| m.by.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        Some((
            stage.id.clone(),
            text,
            holder.with_value(|me| me.any_of(&signoff.roles)) && !mine,
        ))
    });
    let id = move || snapshot.get().map(|s| s.plan.id).unwrap_or_default();
    let run = move |route: ActionRoute, params: Vec<String>, with_reason: Option<String>| {
        let rollout = id();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            let result = api::act(&rollout, route, &params, with_reason, &csrf.get_value()).await;
            busy.set(false);
            match result {
                Ok(()) => {
                    killing.set(false);
                    overriding.set(false);
                    resuming.set(false);
                    stepping_back.set(false);
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    // The step Progress takes: the next stage and its traffic, or the completion.
    let next_step = move || {
        let s = snapshot.get()?;
        let i = s.state.stage?;
        Some(match s.plan.stages.get(i + 1) {
            Some(next) => (Some((next.id.clone(), next.traffic)), s.traffic),
            None => (None, s.traffic),
        })
    };
    let progress_title = move || match next_step() {
        Some((Some((id, traffic)), now)) => {
            format!("Progress to {id}? Traffic goes from {now}% to {traffic}%.")
        }
        Some((None, _)) => {
            "Complete the last stage? The launch is done, or its watch begins.".to_string()
        }
        None => String::new(),
    };
    // What else the step changes and records: flags that change, the sign-offs it carries.
    let progress_details = move || {
        let Some(s) = snapshot.get() else {
            return Vec::new();
        };
        let Some(i) = s.state.stage else {
            return Vec::new();
        };
        let (Some(now), Some(next)) = (s.plan.stages.get(i), s.plan.stages.get(i + 1)) else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        for (key, value) in &next.flags {
            match now.flags.get(key) {
                Some(old) if old == value => {}
                Some(old) => lines.push(format!("flag {key}: {old} → {value}")),
                None => lines.push(format!("flag {key}: set to {value}")),
            }
        }
        if let Some(marks) = s.state.approvals.get(&next.id).filter(|m| !m.is_empty()) {
            let who: Vec<String> = marks
                .iter()
                .map(|m| format!("{} ({})", m.by.name, s.plan.role_title(&m.by.role)))
                .collect();
            lines.push(format!("sign-offs recorded with it: {}", who.join(", ")));
        }
        lines
    };
    let progress = Callback::new(move |reason: String| {
        let rollout = id();
        let step = next_step();
        let reason = Some(reason.trim().to_string()).filter(|r| !r.is_empty());
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api::act(
                &rollout,
                ActionRoute::Progress,
                &[],
                reason,
                &csrf.get_value(),
            )
            .await;
            busy.set(false);
            match result {
                Ok(()) => {
                    progressing.set(false);
                    notice.set(Some(match step {
                        Some((Some((id, traffic)), _)) => format!("Entered {id} ({traffic}%)"),
                        _ => "Completed the last stage".to_string(),
                    }));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    });
    let kill = Callback::new(move |reason| run(ActionRoute::Kill, Vec::new(), Some(reason)));
    let resume = Callback::new(move |reason| run(ActionRoute::Resume, Vec::new(), Some(reason)));
    let step_back =
        Callback::new(move |reason| run(ActionRoute::StepBack, Vec::new(), Some(reason)));
    // The stage a step back returns to, when there is one.
    let previous_stage = move || {
        let s = snapshot.get()?;
        let i = s.state.stage?.checked_sub(1)?;
        s.plan.stages.get(i).map(|st| (st.id.clone(), st.traffic))
    };
    let step_back_title = move || match previous_stage() {
        Some((id, traffic)) => format!(
            "Step back to {id}? Traffic returns to {traffic}% with that stage's flags, and its gates must hold again."
        ),
        None => String::new(),
    };
    let decide = Callback::new(move |reason: String| {
        let rollout = id();
        let choice = decision.get_untracked();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api::decide(&rollout, &choice, reason, &csrf.get_value()).await;
            busy.set(false);
            match result {
                Ok(()) => deciding.set(false),
                Err(e) => error.set(Some(e)),
            }
        });
    });
    // The flags the plan lets people set in this stage, each with its current value.
    let adjustable = Memo::new(move |_| {
        let Some(s) = snapshot.get() else {
            return Vec::new();
        };
        if !matches!(
            s.state.phase,
            Phase::Running | Phase::Paused | Phase::Hypercare
        ) {
            return Vec::new();
        }
        let Some(stage) = s.state.stage.and_then(|i| s.plan.stages.get(i)) else {
            return Vec::new();
        };
        let now = cutover_core::actuate::Desired::of(&s.plan, &s.state).flags;
        s.plan
            .adjust
            .iter()
            .filter(|a| a.stages.is_empty() || a.stages.contains(&stage.id))
            .map(|a| {
                let current = now.get(&a.flag).cloned();
                let stage_value = stage.flags.get(&a.flag).cloned();
                (a.clone(), current, stage_value)
            })
            .collect::<Vec<_>>()
    });
    let chosen = move || {
        let flag = adjust_flag.get();
        adjustable
            .get()
            .into_iter()
            .find(|(a, _, _)| a.flag == flag)
    };
    let adjust = Callback::new(move |reason: String| {
        use cutover_core::flag::FlagValue;
        let rollout = id();
        let flag = adjust_flag.get_untracked();
        let text = adjust_value.get_untracked().trim().to_string();
        let Some((allowed, _, stage_value)) = adjustable
            .get_untracked()
            .into_iter()
            .find(|(a, _, _)| a.flag == flag)
        else {
            return;
        };
        let numeric = allowed.min.is_some()
            || allowed.max.is_some()
            || matches!(stage_value, Some(FlagValue::Number(_)));
        let value = if numeric {
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => serde_json::json!(n),
                _ => {
                    error.set(Some(format!("{flag} takes a number")));
                    return;
                }
            }
        } else if matches!(stage_value, Some(FlagValue::Bool(_)))
            || text == "true"
            || text == "false"
        {
            serde_json::json!(text == "true")
        } else {
            serde_json::json!(text)
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let result = api::adjust(&rollout, &flag, value, reason, &csrf.get_value()).await;
            busy.set(false);
            match result {
                Ok(()) => adjusting.set(false),
                Err(e) => error.set(Some(e)),
            }
        });
    });
    let override_ = Callback::new(move |reason| {
        let gate = override_gate.get_untracked();
        run(ActionRoute::Override, vec![gate], Some(reason));
    });
    let resume_title = move || {
        let stage = snapshot.get().and_then(|s| {
            s.state
                .stage
                .and_then(|i| s.plan.stages.get(i).map(|st| (st.id.clone(), st.traffic)))
        });
        match stage {
            Some((id, traffic)) => format!(
                "Resume after the kill? Traffic returns to {id} ({traffic}%) and its gates must hold again."
            ),
            None => "Resume after the kill? The rollout returns to not started.".to_string(),
        }
    };
    view! {
        <section class="panel actions" aria-label="Actions">
            <Show when=move || may(|p| &p.progress) && phase() == Some(Phase::NotStarted)>
                <button data-testid="start" title=move || why_blocked("Start") disabled=move || busy.get() || !blockers.get().is_empty() on:click=move |_| run(ActionRoute::Start, Vec::new(), None)>"Start"</button>
            </Show>
            <Show when=move || may(|p| &p.progress) && phase() == Some(Phase::Running)>
                <button data-testid="progress" title=move || why_blocked("Progress") disabled=move || busy.get() || !blockers.get().is_empty() on:click=move |_| { notice.set(None); progressing.set(true) }>"Progress to next stage"</button>
            </Show>
            <Show when=move || may(|p| &p.progress) && phase() == Some(Phase::Hypercare)>
                <button data-testid="close" title=move || why_blocked("Close") disabled=move || busy.get() || !blockers.get().is_empty() on:click=move |_| run(ActionRoute::Close, Vec::new(), None)>"Close the rollout"</button>
            </Show>
            <Show when=move || may(|p| &p.pause) && phase() == Some(Phase::Running)>
                <button data-testid="pause" disabled=move || busy.get() on:click=move |_| run(ActionRoute::Pause, Vec::new(), None)>"Pause"</button>
            </Show>
            <Show when=move || may(|p| &p.override_) && phase() == Some(Phase::Running) && !unheld.get().is_empty()>
                <button data-testid="override" on:click=move |_| {
                    override_gate.set(unheld.get_untracked().first().cloned().unwrap_or_default());
                    overriding.set(true);
                }>"Override a gate…"</button>
            </Show>
            <Show when=move || pending_signoff.get().is_some_and(|(_, _, mine)| mine)>
                <button data-testid="approve" disabled=move || busy.get() on:click=move |_| run(ActionRoute::Approve, Vec::new(), None)>
                    {move || pending_signoff.get().map(|(stage, _, _)| format!("Approve {stage}"))}
                </button>
            </Show>
            <Show when=move || may(|p| &p.resume) && matches!(phase(), Some(Phase::Paused | Phase::Killed))>
                // Out of a pause at once; out of a kill only with a typed reason, like the kill.
                <button data-testid="resume" disabled=move || busy.get() on:click=move |_| {
                    if phase() == Some(Phase::Killed) {
                        resuming.set(true);
                    } else {
                        run(ActionRoute::Resume, Vec::new(), None);
                    }
                }>"Resume"</button>
            </Show>
            <Show when=move || may(|p| &p.step_back) && matches!(phase(), Some(Phase::Running | Phase::Paused | Phase::Hypercare | Phase::Completed)) && previous_stage().is_some()>
                <button data-testid="step-back" disabled=move || busy.get() on:click=move |_| stepping_back.set(true)>
                    {move || previous_stage().map(|(id, _)| format!("Step back to {id}…"))}
                </button>
            </Show>
            <Show when=move || may(|p| &p.adjust) && !adjustable.get().is_empty()>
                <button data-testid="adjust" disabled=move || busy.get() on:click=move |_| {
                    let first = adjustable.get_untracked().into_iter().next();
                    adjust_value.set(first.as_ref().and_then(|(_, v, _)| v.as_ref().map(|v| v.to_string())).unwrap_or_default());
                    adjust_flag.set(first.map(|(a, _, _)| a.flag).unwrap_or_default());
                    adjusting.set(true);
                }>"Adjust a flag…"</button>
            </Show>
            // What this role may not do, where the button would be, and why.
            <Show when=move || !may(|p| &p.progress) && phase() == Some(Phase::Running)>
                <button data-testid="progress" disabled title=move || only(|p| &p.progress, "progress")>"Progress to next stage"</button>
                <span class="why-not" data-testid="progress-why-not">{move || only(|p| &p.progress, "progress")}</span>
            </Show>
            <Show when=move || !may(|p| &p.decide) && phase().is_some()>
                <button data-testid="decide" disabled title=move || only(|p| &p.decide, "record a decision")>"Record a decision…"</button>
                <span class="why-not" data-testid="decide-why-not">{move || only(|p| &p.decide, "record a decision")}</span>
            </Show>
            <Show when=move || may(|p| &p.decide)>
                <button data-testid="decide" disabled=move || busy.get() on:click=move |_| { decision.set(String::new()); deciding.set(true) }>"Record a decision…"</button>
            </Show>
            <Show when=move || may(|p| &p.kill) && !matches!(phase(), Some(Phase::Killed | Phase::Completed) | None)>
                <button class="kill" data-testid="kill" on:click=move |_| killing.set(true)>"KILL SWITCH"</button>
            </Show>
            <Show when=move || killing.get()>
                <ReasonDialog
                    name="kill"
                    title="Kill this rollout? Traffic goes to 0%."
                    confirm="Kill now"
                    danger=true
                    busy=busy
                    on_confirm=kill
                    on_cancel=Callback::new(move |_| killing.set(false))
                />
            </Show>
            <Show when=move || stepping_back.get()>
                <ReasonDialog
                    name="step-back"
                    title=step_back_title
                    confirm="Step back"
                    busy=busy
                    on_confirm=step_back
                    on_cancel=Callback::new(move |_| stepping_back.set(false))
                />
            </Show>
            <Show when=move || resuming.get()>
                <ReasonDialog
                    name="resume"
                    title=resume_title
                    confirm="Resume"
                    busy=busy
                    on_confirm=resume
                    on_cancel=Callback::new(move |_| resuming.set(false))
                />
            </Show>
            <Show when=move || deciding.get()>
                <ReasonDialog
                    name="decide"
                    title="Record a decision: it changes nothing, and keeps what the gates say now"
                    confirm="Record"
                    busy=busy
                    on_confirm=decide
                    on_cancel=Callback::new(move |_| deciding.set(false))
                    ready=Signal::derive(move || !decision.get().is_empty())
                >
                    <label for="decision">"Decision"</label>
                    <select id="decision" data-testid="decision" on:change=move |ev| decision.set(event_target_value(&ev))>
                        <option value="" selected disabled>"Choose…"</option>
                        <option value="proceed">"Proceed"</option>
                        <option value="extend">"Extend"</option>
                        <option value="investigate">"Investigate"</option>
                    </select>
                </ReasonDialog>
            </Show>
            <Show when=move || progressing.get()>
                <ReasonDialog
                    name="progress"
                    title=progress_title
                    confirm="Progress"
                    reason_required=false
                    busy=busy
                    on_confirm=progress
                    on_cancel=Callback::new(move |_| progressing.set(false))
                >
                    <ul class="progress-details" data-testid="progress-details">
                        {move || progress_details().into_iter().map(|l| view! { <li>{l}</li> }).collect_view()}
                    </ul>
                </ReasonDialog>
            </Show>
            <Show when=move || adjusting.get()>
                <ReasonDialog
                    name="adjust"
                    title="Adjust a flag within this stage: published at once, undone by the next stage change or a kill"
                    confirm="Adjust"
                    busy=busy
                    on_confirm=adjust
                    on_cancel=Callback::new(move |_| adjusting.set(false))
                    ready=Signal::derive(move || !adjust_value.get().trim().is_empty())
                >
                    <label for="adjust-flag">"Flag"</label>
                    <select id="adjust-flag" data-testid="adjust-flag" on:change=move |ev| {
                        let flag = event_target_value(&ev);
                        let now = adjustable.get_untracked().into_iter().find(|(a, _, _)| a.flag == flag).and_then(|(_, v, _)| v.map(|v| v.to_string()));
                        adjust_value.set(now.unwrap_or_default());
                        adjust_flag.set(flag);
                    }>
                        {move || adjustable.get().into_iter().map(|(a, _, _)| {
                            let selected = adjust_flag.get_untracked() == a.flag;
                            view! { <option value=a.flag.clone() selected=selected>{a.title.clone()}</option> }
                        }).collect_view()}
                    </select>
                    <label for="adjust-value">{move || {
                        let Some((a, now, _)) = chosen() else { return "Value".to_string() };
                        let bounds = match (a.min, a.max) {
                            (Some(lo), Some(hi)) => format!(", {lo} to {hi}"),
                            (Some(lo), None) => format!(", at least {lo}"),
                            (None, Some(hi)) => format!(", at most {hi}"),
                            (None, None) if !a.values.is_empty() => format!(", one of {}", a.values.join(", ")),
                            _ => String::new(),
                        };
                        format!("New value (now {}{bounds})", now.map(|v| v.to_string()).unwrap_or_else(|| "the service's default".into()))
                    }}</label>
                    <input id="adjust-value" data-testid="adjust-value" type="text" autocomplete="off" bind:value=adjust_value/>
                </ReasonDialog>
            </Show>
            <Show when=move || overriding.get()>
                <ReasonDialog
                    name="override"
                    title="Override a gate for this stage"
                    confirm="Override"
                    busy=busy
                    on_confirm=override_
                    on_cancel=Callback::new(move |_| overriding.set(false))
                >
                    <label for="override-gate">"Gate"</label>
                    <select id="override-gate" data-testid="override-gate" on:change=move |ev| override_gate.set(event_target_value(&ev))>
                        {move || unheld.get().into_iter().map(|g| {
                            let selected = override_gate.get_untracked() == g;
                            view! { <option value=g.clone() selected=selected>{g.clone()}</option> }
                        }).collect_view()}
                    </select>
                </ReasonDialog>
            </Show>
            // A stage that promotes itself says so, and what stops it (core words it).
            {move || snapshot.get().and_then(|s| cutover_core::rollout::auto_progress_note(&s.plan, &s.state)).map(|note| view! {
                <p class="auto-note" data-testid="auto-progress">{note}</p>
            })}
            <Show when=move || !blockers.get().is_empty() && matches!(phase(), Some(Phase::NotStarted | Phase::Running | Phase::Hypercare))>
                <div class="blockers" data-testid="progress-blockers">
                    <span class="blockers-title">{move || match phase() {
                        Some(Phase::NotStarted) => "Start is blocked:",
                        Some(Phase::Hypercare) => "Close is blocked:",
                        _ => "Progress is blocked:",
                    }}</span>
                    <ul>{move || blockers.get().into_iter().map(|b| view! { <li>{b}</li> }).collect_view()}</ul>
                </div>
            </Show>
            // After a kill, someone who may not resume had an empty bar: say who can.
            <Show when=move || phase() == Some(Phase::Killed) && !may(|p| &p.resume)>
                <p class="blockers" data-testid="killed-note">{move || {
                    let who = snapshot
                        .get()
                        .map(|s| s.plan.permissions.resume.iter().map(|r| s.plan.role_title(r).to_string()).collect::<Vec<_>>().join(" or "))
                        .unwrap_or_default();
                    format!("Killed: traffic is at 0%. Only a {who} can resume it.")
                }}</p>
            </Show>
            <Show when=move || pending_signoff.get().is_some()>
                <p class="signoff" data-testid="signoff">{move || pending_signoff.get().map(|(_, text, _)| text)}</p>
            </Show>
            <p class="notice" role="status" data-testid="action-notice">{move || notice.get()}</p>
            <p class="error" role="alert" data-testid="action-error">{move || error.get()}</p>
        </section>
    }
}
