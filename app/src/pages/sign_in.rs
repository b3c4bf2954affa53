//! The sign-in form: paste an access token; the server answers with a session cookie.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Me};

/// Asks for a token and reports the signed-in user through `on_signed_in`.
#[component]
pub fn SignIn(
    /// Called with the user once the server accepts the token.
    on_signed_in: Callback<Me>,
) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        spawn_local(async move {
            match api::sign_in(&token.get_untracked()).await {
                Ok(me) => on_signed_in.run(me),
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="sign-in panel" on:submit=submit>
            <h2>"Sign in to cutover"</h2>
            <label for="token">"Access token"</label>
            <input
                id="token"
                type="password"
                autocomplete="off"
                data-testid="token-input"
                placeholder="cut_…"
                bind:value=token
            />
            <button type="submit" data-testid="sign-in" disabled=move || busy.get()>"Sign in"</button>
            <p class="error" role="alert" data-testid="sign-in-error">{move || error.get()}</p>
        </form>
    }
}
