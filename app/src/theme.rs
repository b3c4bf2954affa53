//! Dark (the war room's default) or light, chosen by the person and remembered in this
//! browser. The page's colours follow `data-theme` on `<html>`; the canvas charts read the
//! theme signal and redraw when it changes.

use leptos::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    Dark,
    Light,
}

const KEY: &str = "cutover.theme";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

impl Theme {
    fn name(self) -> &'static str {
        match self {
            Theme::Dark => "dark",
            Theme::Light => "light",
        }
    }

    /// What this browser chose last time; dark unless it chose light.
    fn saved() -> Theme {
        match storage()
            .and_then(|s| s.get_item(KEY).ok().flatten())
            .as_deref()
        {
            Some("light") => Theme::Light,
            _ => Theme::Dark,
        }
    }

    fn apply(self) {
        if let Some(root) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.document_element())
        {
            let _ = root.set_attribute("data-theme", self.name());
        }
        if let Some(s) = storage() {
            let _ = s.set_item(KEY, self.name());
        }
    }
}

/// Makes the theme available to every component and keeps the page in step with it.
pub fn provide() {
    let theme = RwSignal::new(Theme::saved());
    Effect::new(move |_| theme.get().apply());
    provide_context(theme);
}

/// The current theme (dark where none was provided).
pub fn current() -> Signal<Theme> {
    match use_context::<RwSignal<Theme>>() {
        Some(theme) => theme.into(),
        None => Signal::stored(Theme::Dark),
    }
}

/// A button that switches between the two, saying which one it turns on.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = use_context::<RwSignal<Theme>>();
    let light = move || theme.is_some_and(|t| t.get() == Theme::Light);
    let toggle = move |_| {
        if let Some(t) = theme {
            t.update(|t| {
                *t = match t {
                    Theme::Dark => Theme::Light,
                    Theme::Light => Theme::Dark,
                }
            });
        }
    };
    view! {
        <button class="link" data-testid="theme-toggle" aria-pressed=move || light().to_string() on:click=toggle>
            "Light theme"
        </button>
    }
}
