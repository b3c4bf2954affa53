//! cutover's single-page app: renders the server's snapshots and live stream. It never decides
//! a gate verdict itself.

mod api;
mod app;
mod boot;
mod clock;
mod components;
mod live;
mod pages;
mod theme;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
    // The module's linear memory, so the figures bench can watch it stay flat over hours.
    if let Some(window) = web_sys::window() {
        let _ = js_sys::Reflect::set(&window, &"cutoverMemory".into(), &wasm_bindgen::memory());
    }
    // One chart draw over a given number of points, for the bench's redraw figure.
    #[cfg(feature = "draw-bench")]
    components::chart::bench::install();
}
