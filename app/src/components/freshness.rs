//! "Last update N s ago", red and marked STALE when the stream has gone quiet: a wall screen
//! must never show old numbers as if they were live.

use leptos::prelude::*;

/// Seconds without an event before the screen says it is stale (ticks come every second).
const STALE_AFTER_SECS: f64 = 5.0;
/// How long "resynced" stays beside the freshness after the stream started again whole.
const RESYNC_SHOWN_MS: f64 = 15_000.0;

/// How fresh the live data is.
#[component]
pub fn Freshness(
    /// Browser time (ms) of the last event; 0 before the first.
    #[prop(into)]
    last_event: Signal<f64>,
    /// The newest resync of a live stream (browser time, ms, and why), if any.
    #[prop(optional, into)]
    resync: Option<Signal<Option<(f64, String)>>>,
    /// How old the other replicas' share of the numbers is (ms), and how many they are.
    #[prop(optional, into)]
    replicas: Option<Signal<Option<(i64, usize)>>>,
) -> impl IntoView {
    let now = RwSignal::new(js_sys::Date::now());
    if let Ok(handle) = set_interval_with_handle(
        move || now.set(js_sys::Date::now()),
        std::time::Duration::from_millis(500),
    ) {
        on_cleanup(move || handle.clear());
    }
    let age = move || {
        let last = last_event.get();
        (last > 0.0).then(|| ((now.get() - last) / 1000.0).max(0.0))
    };
    let stale = move || age().is_none_or(|a| a > STALE_AFTER_SECS);
    // A resync is said for a while after it happens, with its reason on hover.
    let resynced = move || {
        resync
            .and_then(|r| r.get())
            .filter(|(at, _)| now.get() - at < RESYNC_SHOWN_MS)
    };
    view! {
        <span class="freshness" class:stale=stale data-testid="freshness">
            {move || match age() {
                None => "waiting for data".to_string(),
                Some(a) if a > STALE_AFTER_SECS => format!("STALE: last update {a:.0} s ago"),
                Some(a) => format!("last update {a:.0} s ago"),
            }}
            {move || replicas.and_then(|r| r.get()).map(|(age, n)| {
                let whose = if n == 1 { "1 other replica".to_string() } else { format!("{n} other replicas") };
                view! {
                    <span class="replicas" data-testid="replicas">
                        {format!(" · {whose}: data {:.0} s old", age as f64 / 1000.0)}
                    </span>
                }
            })}
            {move || resynced().map(|(_, reason)| view! {
                <span class="resynced" title=reason data-testid="resynced">" · resynced"</span>
            })}
        </span>
    }
}
