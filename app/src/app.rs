//! The top-level component and the router: signs the browser in, then picks the page from
//! the URL — the rollout page for `/r/{id}` (as the wall screen for `/r/{id}/wall` or `?wall`,
//! read-only for a share-link session), else the overview of every rollout.

use leptos::prelude::*;

use crate::api::{self, Me};
use crate::pages::overview::Overview;
use crate::pages::rollout::Dashboard;
use crate::pages::sign_in::SignIn;
use crate::theme::ThemeToggle;

/// The whole app: signs the browser in if needed, then shows the dashboard.
#[component]
pub fn App() -> impl IntoView {
    crate::live::mark_first("cutover:app-started");
    crate::theme::provide();
    let me = RwSignal::new(None::<Me>);
    let checked = LocalResource::new(api::whoami);
    Effect::new(move |_| {
        if let Some(Ok(Some(found))) = checked.get() {
            me.set(Some(found));
        }
    });
    let on_signed_in = Callback::new(move |found: Me| me.set(Some(found)));
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || match (checked.get(), me.get()) {
                (_, Some(user)) => view! { <SignedIn me=user on_sign_out=Callback::new(move |_| me.set(None)) /> }.into_any(),
                (Some(Err(e)), None) => view! { <p class="error">"Cannot reach the server: " {e}</p> }.into_any(),
                (Some(_), None) => view! { <SignIn on_signed_in /> }.into_any(),
                (None, None) => view! { <p>"Loading…"</p> }.into_any(),
            }}
        </Transition>
    }
}

/// Everything a signed-in person sees.
#[component]
fn SignedIn(me: Me, on_sign_out: Callback<()>) -> impl IntoView {
    crate::live::mark_first("cutover:signed-in");
    let user = StoredValue::new(me.clone());
    let csrf = me.csrf.clone();
    let sign_out = move |_| {
        let csrf = csrf.clone();
        leptos::task::spawn_local(async move {
            let _ = api::sign_out(&csrf).await;
            on_sign_out.run(());
        });
    };
    let who = match &me.rollout {
        Some(_) => "stakeholder · read-only".to_string(),
        None => format!("{} · {}", me.name, me.role),
    };
    view! {
        <div class="who">
            <span data-testid="whoami">{who}</span>
            <ThemeToggle />
            // A stakeholder's link is not an account: signing out of it would only strand them.
            {me.rollout.is_none().then(|| view! {
                <button class="link" data-testid="sign-out" on:click=sign_out>"Sign out"</button>
            })}
        </div>
        {match me.rollout.clone() {
            // A share link's session is bound to its rollout: the page needs nothing from the
            // list of rollouts, so it opens at once, a round trip sooner on a phone.
            Some(only) => view! { <Dashboard id=only title=None me=me.clone() wall=is_wall() /> }.into_any(),
            None => view! { <Pick user /> }.into_any(),
        }}
    }
}

/// The rollout the URL names, once the list says it exists, or the overview of them all.
#[component]
fn Pick(user: StoredValue<Me>) -> impl IntoView {
    let rollouts = LocalResource::new(api::rollouts);
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                rollouts
                    .get()
                    .map(|result| match result {
                        Ok(list) => match wanted(&user.get_value()) {
                            Some(id) => match list.iter().find(|r| r.id == id) {
                                Some(r) => view! { <Dashboard id=r.id.clone() title=Some(r.title.clone()) me=user.get_value() wall=is_wall() /> }.into_any(),
                                None => view! { <p class="error">"No rollout \"" {id} "\" here."</p> }.into_any(),
                            },
                            None => view! { <Overview initial=list /> }.into_any(),
                        },
                        Err(e) => view! { <p class="error">"Cannot reach the server: " {e}</p> }.into_any(),
                    })
            }}
        </Transition>
    }
}

/// `/r/{id}/wall` or `?wall`: the view for a screen across the room.
fn is_wall() -> bool {
    let location = web_sys::window().map(|w| w.location());
    let path = location
        .as_ref()
        .and_then(|l| l.pathname().ok())
        .unwrap_or_default();
    let query = location
        .as_ref()
        .and_then(|l| l.search().ok())
        .unwrap_or_default();
    path.ends_with("/wall") || query.contains("wall")
}

/// The rollout the URL names (`/r/{id}`); a share-link session always gets its own.
fn wanted(me: &Me) -> Option<String> {
    if let Some(only) = &me.rollout {
        return Some(only.clone());
    }
    let path = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .unwrap_or_default();
    path.strip_prefix("/r/")
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
}
