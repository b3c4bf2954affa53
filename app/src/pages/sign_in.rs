//! The sign-in page: the company's single sign-on first, when the server offers it; pasting an
//! access token below it (automation users, the CLI's people).

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
    let offer = RwSignal::new(None::<api::SsoOffer>);
    spawn_local(async move { offer.set(api::sso().await) });
    // Back to this page after the provider.
    let here = window()
        .location()
        .pathname()
        .unwrap_or_else(|_| "/".into());
    let back = String::from(js_sys::encode_uri_component(&here));
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
            {move || {
                offer
                    .get()
                    .map(|o| {
                        let href = format!("{}?return_to={}", o.start, back);
                        view! {
                            <a class="sso-sign-in" href=href data-testid="sso-sign-in">
                                {format!("Sign in with {}", o.name)}
                            </a>
                            <p class="muted">"or, for automation, paste an access token:"</p>
                        }
                    })
            }}
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
