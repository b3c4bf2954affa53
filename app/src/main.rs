//! cutover's single-page app: renders the server's snapshots and live stream. It never decides
//! a gate verdict itself.

mod api;
mod app;
mod components;
mod live;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
