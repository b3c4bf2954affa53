//! Every path the server answers, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{delete, get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{actions, assets, export, ingest, observe, rollouts, sessions};

/// How long any request but the live stream may take, body upload included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/rollouts", get(rollouts::list))
        .route("/rollouts/{id}", get(actions::snapshot))
        .route("/rollouts/{id}/audit", get(actions::audit))
        .route("/rollouts/{id}/flags", get(actions::flags))
        .route("/rollouts/{id}/export.csv", get(export::csv))
        .route("/rollouts/{id}/start", post(actions::start))
        .route("/rollouts/{id}/progress", post(actions::progress))
        .route("/rollouts/{id}/pause", post(actions::pause))
        .route("/rollouts/{id}/resume", post(actions::resume))
        .route("/rollouts/{id}/kill", post(actions::kill))
        .route("/rollouts/{id}/approvals", post(actions::approve))
        .route(
            "/rollouts/{id}/gates/{gate}/override",
            post(actions::override_gate),
        )
        .route(
            "/rollouts/{id}/checklists/{list}/items/{item}",
            post(actions::check_item),
        )
        .route("/rollouts/{id}/events", post(rollouts::ingest))
        .route("/rollouts/{id}/shares", post(sessions::create_share))
        .route("/shares/{share}", delete(sessions::revoke_share))
        .route(
            "/session",
            post(sessions::sign_in)
                .get(sessions::whoami)
                .delete(sessions::sign_out),
        )
        // Every request above must finish in time (a stalled upload cannot hold a worker);
        // the live stream below is meant to stay open.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .route("/rollouts/{id}/stream", get(rollouts::stream))
        .fallback(assets::api_not_found);
    Router::new()
        .nest("/api", api)
        .route("/health", get(observe::health))
        .route("/metrics", get(observe::metrics))
        .route("/s/{secret}", get(sessions::open_share))
        .fallback(assets::serve)
        .layer(DefaultBodyLimit::max(ingest::MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(assets::content_security_policy()),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
