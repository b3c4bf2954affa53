//! Every path the server answers, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{assets, ingest, rollouts};

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/rollouts", get(rollouts::list))
        .route("/rollouts/{id}/events", post(rollouts::ingest))
        .route("/rollouts/{id}/stream", get(rollouts::stream))
        .fallback(assets::api_not_found);
    Router::new()
        .nest("/api", api)
        .route("/health", get(|| async { "ok" }))
        .fallback(assets::serve)
        .layer(DefaultBodyLimit::max(ingest::MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
