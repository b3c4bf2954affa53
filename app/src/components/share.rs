//! A lead or admin makes a read-only link for stakeholders: the full URL is shown once, to
//! copy, with when it expires, and can be revoked at once.

use cutover_core::role::Role;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Me, Share};

/// The share button and the link it made, for roles that may make one.
#[component]
pub fn ShareLink(
    /// The signed-in user.
    me: Me,
    /// The rollout the link opens.
    rollout: String,
) -> impl IntoView {
    let allowed = me.any_of(&[Role::Lead, Role::Admin]);
    let made = RwSignal::new(None::<Share>);
    let error = RwSignal::new(None::<String>);
    let csrf = StoredValue::new(me.csrf);
    let rollout = StoredValue::new(rollout);
    let create = move |_| {
        error.set(None);
        spawn_local(async move {
            match api::create_share(&rollout.get_value(), &csrf.get_value()).await {
                Ok(share) => made.set(Some(share)),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let revoke = move |_| {
        let Some(share) = made.get_untracked() else {
            return;
        };
        spawn_local(async move {
            match api::revoke_share(&share.id, &csrf.get_value()).await {
                Ok(()) => made.set(None),
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    allowed.then(|| {
        view! {
            <section class="panel share" id="share" aria-label="Read-only link">
                <button data-testid="share-create" on:click=create>"Make a read-only link for stakeholders"</button>
                {move || made.get().map(|s| {
                    let url = format!("{origin}{}", s.path);
                    let until = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(s.expires_at as f64))
                        .to_locale_string("en-GB", &wasm_bindgen::JsValue::UNDEFINED);
                    view! {
                        <label for="share-link">"Link (shown once; anyone with it sees this rollout read-only until " {String::from(until)} ")"</label>
                        <input id="share-link" data-testid="share-link" readonly value=url />
                        <button data-testid="share-revoke" on:click=revoke>"Revoke this link"</button>
                    }
                })}
                <p class="error" role="alert">{move || error.get()}</p>
            </section>
        }
    })
}
