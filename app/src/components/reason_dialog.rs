//! The dialog that asks why before an action that goes in the audit log: the kill switch, a
//! gate override and a resume after a kill. It takes the keyboard focus when it opens (its
//! first field) and keeps it (Tab goes round inside), Escape from anywhere in it or Cancel
//! close it and give the focus back to the button that opened it, and the confirm button
//! sends the typed reason.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// A modal form: a title, any fields the action needs first (the gate to override), the
/// reason, then confirm and cancel. Its element ids and test ids are `{name}-title`,
/// `{name}-reason`, `{name}-confirm` and `{name}-cancel`.
#[component]
pub fn ReasonDialog(
    /// The prefix of its ids: `kill`, `override`, `resume`.
    name: &'static str,
    /// The question, in words.
    #[prop(into)]
    title: TextProp,
    /// The confirm button's label.
    confirm: &'static str,
    /// Whether the confirm button looks like the kill switch.
    #[prop(optional)]
    danger: bool,
    /// Whether the confirm button waits for a typed reason.
    #[prop(default = true)]
    reason_required: bool,
    /// An action under way: the confirm button waits for it.
    #[prop(into)]
    busy: Signal<bool>,
    /// Whether the fields before the reason are filled in (a decision chosen): the confirm
    /// button waits for it too.
    #[prop(optional, into)]
    ready: Option<Signal<bool>>,
    /// Sends the action with the reason as typed.
    on_confirm: Callback<String>,
    /// Closes the dialog without acting.
    on_cancel: Callback<()>,
    /// Fields shown before the reason.
    #[prop(optional)]
    children: Option<Children>,
) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let form = NodeRef::<leptos::html::Form>::new();
    // The button that opened the dialog gets the focus back when it closes, so a keyboard
    // user goes on from where they were (kept by its test id: an element is not `Send`).
    let opener = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
        .and_then(|e| e.get_attribute("data-testid"));
    on_cleanup(move || {
        let Some(id) = opener else { return };
        let button = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| {
                d.query_selector(&format!("[data-testid='{id}']"))
                    .ok()
                    .flatten()
            })
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
        if let Some(button) = button {
            let _ = button.focus();
        }
    });
    // Focus on the first field, so Escape and typing reach the dialog.
    Effect::new(move |_| {
        let first = form
            .get()
            .and_then(|f| f.query_selector("input, select, textarea").ok()?);
        if let Some(el) = first.and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok()) {
            let _ = el.focus();
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        on_confirm.run(reason.get_untracked());
    };
    // Escape closes from anywhere in the dialog; Tab and Shift+Tab go round inside it.
    let keys = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            on_cancel.run(());
            return;
        }
        if ev.key() != "Tab" {
            return;
        }
        let Some(form) = form.get() else { return };
        let Ok(all) = form.query_selector_all("input, select, textarea, button:not([disabled])")
        else {
            return;
        };
        let (Some(first), Some(last)) = (all.get(0), all.get(all.length().saturating_sub(1)))
        else {
            return;
        };
        let active = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.active_element())
            .map(web_sys::Node::from);
        let wrap_to = if ev.shift_key() && active.as_ref() == Some(&first) {
            Some(last)
        } else if !ev.shift_key() && active.as_ref() == Some(&last) {
            Some(first)
        } else {
            None
        };
        if let Some(el) = wrap_to.and_then(|n| n.dyn_into::<web_sys::HtmlElement>().ok()) {
            ev.prevent_default();
            let _ = el.focus();
        }
    };
    let title_id = move || format!("{name}-title");
    let reason_id = move || format!("{name}-reason");
    let label = if reason_required {
        "Reason (required, goes in the audit log)"
    } else {
        "Reason (optional, goes in the audit log)"
    };
    view! {
        <form class=if danger { "kill-dialog danger" } else { "kill-dialog calm" } role="dialog" aria-modal="true" aria-labelledby=title_id() node_ref=form on:submit=submit on:keydown=keys>
            <h2 id=title_id() data-testid=title_id()>{move || title.get()}</h2>
            {children.map(|c| c())}
            <label for=reason_id()>{label}</label>
            <textarea id=reason_id() data-testid=reason_id() required=reason_required bind:value=reason></textarea>
            <div class="dialog-buttons">
                <button
                    type="submit"
                    class=danger.then_some("kill")
                    data-testid=format!("{name}-confirm")
                    disabled=move || {
                        busy.get()
                            || (reason_required && reason.get().trim().is_empty())
                            || ready.is_some_and(|r| !r.get())
                    }
                >{confirm}</button>
                <button type="button" data-testid=format!("{name}-cancel") on:click=move |_| on_cancel.run(())>"Cancel"</button>
            </div>
        </form>
    }
}
