//! cutover's server: HTTP API, live stream, storage, and the commands of the `cutover` binary.
//! `app(state)` builds the router (tests call it), `serve(listener, state, shutdown)` runs it.

pub mod actions;
pub mod actuate;
pub mod assets;
pub mod auth;
pub mod charts;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod evaluator;
pub mod export;
pub mod ingest;
pub mod live;
pub mod observe;
pub mod prometheus;
pub mod replicas;
pub mod rollouts;
pub mod routes;
pub mod sessions;
pub mod simulate;
pub mod state;
pub mod storage;

use std::future::Future;

use tokio::net::TcpListener;

pub use routes::app;
pub use state::AppState;

/// Starts what runs beside the handlers: the evaluator, the Prometheus poller, the follower of
/// other replicas. Abort the handles to stop them.
pub fn spawn_background(
    state: &AppState,
    prometheus: Option<std::sync::Arc<prometheus::PromClient>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(evaluator::run(state.clone())),
        tokio::spawn(prometheus::run(state.clone(), prometheus)),
        tokio::spawn(replicas::follow(state.clone())),
    ]
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
