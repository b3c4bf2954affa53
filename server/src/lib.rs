//! cutover's server, by layer:
//!
//! - `http`: the router, its handlers (one file per resource), auth, errors, the accept loop;
//! - `runtime`: the loaded rollouts and what runs beside the handlers (the commit of an
//!   action, the evaluator, live fan-out, replicas, the janitor);
//! - `store`: durable state in SQLite or PostgreSQL;
//! - `sources`: where metrics come from (push ingestion, OpenTelemetry, Prometheus, the demo's
//!   traffic);
//! - `actuate`: what progress and kill do in the world (webhooks, env files);
//! - `notify`: telling people (Slack-compatible and signed webhook channels, retried);
//! - `cli`: the `cutover` binary's commands;
//! - `clock`: the wall clock and lock recovery, a leaf every layer may use.
//!
//! `app(state, edge)` builds the router, `serve(listener, state, shutdown)` runs it
//! (`serve_with` with the edge's options: trusted proxies, stream limits).

pub mod actuate;
pub mod cli;
pub mod clock;
pub mod http;
pub mod net;
pub mod notify;
pub mod runtime;
pub mod sources;
pub mod sso;
pub mod store;

pub use http::admission::Options as ServeOptions;
pub use http::router::app;
pub use http::serve::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS, serve, serve_with};
pub use runtime::state::AppState;

/// The README's Rust examples compile against the real crates (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

/// Starts what runs beside the handlers: the evaluator, the Prometheus poller, the follower of
/// other replicas, the janitor. Abort the handles to stop them.
pub fn spawn_background(
    state: &AppState,
    prometheus: Option<std::sync::Arc<sources::prometheus::PromClient>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(runtime::evaluator::run(state.clone())),
        tokio::spawn(runtime::prometheus::run(state.clone(), prometheus)),
        tokio::spawn(runtime::replicas::follow(state.clone())),
        tokio::spawn(runtime::janitor::run(state.clone())),
        tokio::spawn(runtime::viewers::run(state.clone())),
        tokio::spawn(runtime::outboxes::run(state.clone())),
    ]
}
