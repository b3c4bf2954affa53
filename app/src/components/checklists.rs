//! Every checklist of the plan, in plan order with its phase (T-60m, T-30m, ...): each item
//! with its checkbox, who checked it and when, and items bound to a gate ticking themselves
//! while the gate passes.

use cutover_core::gates::Verdict;
use cutover_core::plan::{Checklist, Item};
use cutover_core::role::Role;
use cutover_core::snapshot::{Snapshot, Tick};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Me};

/// The checklists, live; checkboxes only for those who may check.
#[component]
pub fn Checklists(
    /// The signed-in user, or None for read-only views.
    me: Option<Me>,
    /// The latest snapshot.
    #[prop(into)]
    snapshot: Signal<Option<Snapshot>>,
    /// The latest tick (gate verdicts for gate-bound items).
    #[prop(into)]
    tick: Signal<Option<Tick>>,
) -> impl IntoView {
    let error = RwSignal::new(None::<String>);
    let me = StoredValue::new(me);
    // The gates passing now. The lists are rebuilt when this set changes, not on every tick,
    // so a keyboard user's focus on a checkbox stays put.
    let passing = Memo::new(move |_| {
        tick.with(|t| {
            t.as_ref()
                .map(|t| {
                    t.gates
                        .iter()
                        .filter(|g| g.verdict == Verdict::Pass)
                        .map(|g| g.id.clone())
                        .collect::<std::collections::BTreeSet<String>>()
                })
                .unwrap_or_default()
        })
    });
    // Items past their due time, and the open occurrences of recurring items not yet ticked,
    // judged by core's clock once per tick at the newest tick's server time: like `passing`,
    // the lists are rebuilt only when these sets change (a new occurrence opening clears its
    // checkbox though nothing is overdue yet).
    type Keys = std::collections::BTreeSet<String>;
    let due = Memo::new(move |_| {
        let s = tick.with(|t| snapshot.get().map(|s| s.with_tick(t.as_ref())))?;
        let clock = cutover_core::schedule::clock(&s.plan, &s.state, s.at);
        let overdue: Keys = clock
            .overdue()
            .map(|i| format!("{}/{}", i.list, i.item))
            .collect();
        let open: Keys = clock
            .items
            .iter()
            .filter_map(|i| i.occurrence.map(|n| format!("{}/{}#{n}", i.list, i.item)))
            .collect();
        Some((overdue, open))
    });
    let item_view = move |list: &Checklist, item: &Item, s: &Snapshot| {
        let key = format!("{}/{}", list.id, item.id);
        let recurring = cutover_core::schedule::recurring(list, item, &s.state, s.at);
        // A recurring item's latest tick speaks for it.
        let mark = match &recurring {
            Some(r) => (1..=r.ticked.max(r.total))
                .rev()
                .find_map(|n| {
                    s.state
                        .checked
                        .get(&cutover_core::plan::occurrence_key(&list.id, &item.id, n))
                })
                .cloned(),
            None => s.state.checked.get(&key).cloned(),
        };
        let by_gate = item
            .gate
            .as_ref()
            .filter(|g| passing.with_untracked(|p| p.contains(*g)));
        // An item that needs several days is done only once checked on enough in a row.
        // A recurring item reads checked while no open occurrence waits for a tick.
        let checked = match &recurring {
            Some(r) => r.ticked > 0 && r.open.is_none(),
            None => s.state.item_done(list, item, 0) || by_gate.is_some(),
        };
        let late = due.with_untracked(|d| d.as_ref().is_some_and(|(o, _)| o.contains(&key)));
        let written = list.due_phase(item).zip(list.due(item));
        let due = match &recurring {
            Some(r) => r.open.as_ref().map(|o| {
                let at = o.due.map(crate::clock::hm).unwrap_or_default();
                if late {
                    format!("⚠ OVERDUE · {} was due {at}", o.label)
                } else {
                    format!("{} due {at}", o.label)
                }
            }),
            None => written.map(|(written, when)| {
                let label = when.label(&s.plan, written);
                if late {
                    format!("⚠ OVERDUE · due {label}")
                } else {
                    format!("due {label}")
                }
            }),
        };
        let days = match &recurring {
            Some(r) => Some(format!("{} of {} done · {}", r.ticked, r.total, r.every)),
            None => (item.days > 1).then(|| {
                format!(
                    "{} of {} days in a row",
                    s.state.days_in_a_row(&list.id, &item.id),
                    item.days
                )
            }),
        };
        // An item ticked by its gate is not a person's to untick.
        let may = (mark.is_some() || by_gate.is_none())
            && me.with_value(|m| {
                m.as_ref().is_some_and(|m| {
                    m.any_of(&s.plan.permissions.check)
                        && item
                            .role
                            .is_none_or(|needed| m.holds(needed) || m.holds(Role::Lead))
                })
            });
        let who = match (&mark, by_gate) {
            (Some(m), _) if !checked => {
                format!("last by {} · {}", m.by.name, crate::clock::hm(m.at))
            }
            (Some(m), _) => match &m.reason {
                Some(note) => format!("{} · {} · {note}", m.by.name, crate::clock::hm(m.at)),
                None => format!("{} · {}", m.by.name, crate::clock::hm(m.at)),
            },
            (None, Some(g)) => format!("auto: gate {g} passing"),
            (None, None) => item
                .role
                .map(|r| format!("needs {}", s.plan.role_title(&r)))
                .unwrap_or_default(),
        };
        let (rollout, list_id, item_id) = (s.plan.id.clone(), list.id.clone(), item.id.clone());
        // An optional note goes with a check (a snapshot id, a ticket): typed before ticking.
        let note = NodeRef::<leptos::html::Input>::new();
        let toggle = move |_| {
            let (rollout, list_id, item_id) = (rollout.clone(), list_id.clone(), item_id.clone());
            let csrf = me.with_value(|m| m.as_ref().map(|m| m.csrf.clone()).unwrap_or_default());
            let text = note
                .get_untracked()
                .map(|n| n.value().trim().to_string())
                .filter(|t| !t.is_empty() && !checked);
            spawn_local(async move {
                if let Err(e) =
                    api::check_item(&rollout, &list_id, &item_id, !checked, text, &csrf).await
                {
                    error.set(Some(e));
                }
            });
        };
        let id = format!("item-{}-{}", list.id, item.id);
        let who_id = format!("{id}-who");
        let note_id = format!("{id}-note");
        let note_label = format!("Note for: {}", item.text);
        let (row_id, input_id) = (id.clone(), id.clone());
        let due_id = format!("{id}-due");
        let days_id = format!("{id}-days");
        view! {
            <li class:checked=checked class:overdue=late data-testid=row_id>
                <input type="checkbox" id=input_id prop:checked=checked disabled=!may on:change=toggle />
                <label for=id>{item.text.clone()}</label>
                {(may && !checked).then(|| view! {
                    <input type="text" class="note" node_ref=note data-testid=note_id
                        placeholder="note (optional)" aria-label=note_label maxlength="200" />
                })}
                <span class="who" data-testid=who_id>{who}</span>
                {days.map(|d| view! { <span class="days" data-testid=days_id>{d}</span> })}
                {due.map(|d| view! { <span class="due" data-testid=due_id>{d}</span> })}
            </li>
        }
    };
    let lists = move || {
        let Some(s) = snapshot.get() else {
            return Vec::new();
        };
        passing.track();
        due.track();
        s.plan
            .checklists
            .iter()
            .map(|list| {
                let done = list
                    .items
                    .iter()
                    .filter(|i| {
                        s.state.item_done(list, i, 0)
                            || i.gate
                                .as_ref()
                                .is_some_and(|g| passing.with_untracked(|p| p.contains(g)))
                    })
                    .count();
                let heading = match &list.phase {
                    Some(p) => format!("{p} · {} ({done}/{})", list.title, list.items.len()),
                    None => format!("{} ({done}/{})", list.title, list.items.len()),
                };
                let items = list
                    .items
                    .iter()
                    .map(|i| item_view(list, i, &s))
                    .collect::<Vec<_>>();
                view! {
                    <div class="checklist" data-testid=format!("checklist-{}", list.id)>
                        <h3>{heading}</h3>
                        <ul>{items}</ul>
                    </div>
                }
            })
            .collect::<Vec<_>>()
    };
    view! {
        <section class="panel">
            <h2>"Checklists"</h2>
            <p class="error" role="alert" data-testid="checklist-error">{move || error.get()}</p>
            <div class="checklists">{lists}</div>
        </section>
    }
}
