//! Every path the server answers, in one place.

use cutover_core::route::ActionRoute;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};

use crate::http::admission::Edge;
use crate::http::heavy::Heavy;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::runtime::state::AppState;
use crate::{
    http::actions, http::assets, http::export, http::observe, http::ofrep, http::otlp,
    http::receivers, http::rollouts, http::sessions, http::sso, sources::ingest,
};

/// How long any request but the live stream may take, body upload included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// API answers smaller than this go uncompressed: a packet either way, and less work.
pub const MIN_COMPRESSED_BYTES: u16 = 1024;

/// The router for `state`, with `edge` (stream admission, trusted proxies) for the handlers.
pub fn app(state: AppState, edge: Arc<Edge>) -> Router {
    let https = state.https();
    let api = Router::new()
        .route("/rollouts", get(rollouts::list))
        .route("/rollouts/{id}", get(actions::snapshot))
        .route("/rollouts/{id}/audit", get(actions::audit))
        .route("/rollouts/{id}/flags", get(actions::flags))
        .route("/rollouts/{id}/export.csv", get(export::csv))
        .route("/rollouts/{id}/receivers", get(receivers::list))
        // The action routes are written once, in core, for the CLI and the app too.
        .route(ActionRoute::Start.pattern(), post(actions::start))
        .route(ActionRoute::Progress.pattern(), post(actions::progress))
        .route(ActionRoute::Pause.pattern(), post(actions::pause))
        .route(ActionRoute::Resume.pattern(), post(actions::resume))
        .route(ActionRoute::Kill.pattern(), post(actions::kill))
        .route(ActionRoute::StepBack.pattern(), post(actions::step_back))
        .route(ActionRoute::Close.pattern(), post(actions::close))
        .route(ActionRoute::Approve.pattern(), post(actions::approve))
        .route(ActionRoute::Schedule.pattern(), post(actions::schedule))
        .route(ActionRoute::Decide.pattern(), post(actions::decide))
        .route(ActionRoute::Ack.pattern(), post(actions::ack))
        .route(ActionRoute::Adjust.pattern(), post(actions::adjust))
        .route(
            ActionRoute::Override.pattern(),
            post(actions::override_gate),
        )
        .route(ActionRoute::Check.pattern(), post(actions::check_item))
        .route("/rollouts/{id}/events", post(rollouts::ingest))
        .route(
            "/rollouts/{id}/ofrep/v1/evaluate/flags",
            post(ofrep::evaluate_all_in).layer(DefaultBodyLimit::max(ofrep::MAX_BODY_BYTES)),
        )
        .route(
            "/rollouts/{id}/ofrep/v1/evaluate/flags/{key}",
            post(ofrep::evaluate_in).layer(DefaultBodyLimit::max(ofrep::MAX_BODY_BYTES)),
        )
        .route("/rollouts/{id}/shares", post(sessions::create_share))
        .route("/shares/{share}", delete(sessions::revoke_share))
        .route("/sso", get(sso::offered))
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
        // JSON (and CSV) answers compressed as the client accepts. Not the live stream below,
        // which must flush each event as it happens, and not bodies too small to gain.
        .layer(
            CompressionLayer::new().compress_when(
                SizeAbove::new(MIN_COMPRESSED_BYTES)
                    .and(NotForContentType::SSE)
                    .and(NotForContentType::GRPC)
                    .and(NotForContentType::IMAGES),
            ),
        )
        .route("/rollouts/{id}/stream", get(rollouts::stream))
        .fallback(assets::api_not_found)
        // Answers depend on who asks and change every second: no cache keeps them.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    // What services speak: OpenTelemetry in, OpenFeature out, at the paths their SDKs use.
    let ecosystem = Router::new()
        .route("/v1/metrics", post(otlp::metrics))
        .route("/v1/logs", post(otlp::logs))
        .route(
            "/ofrep/v1/evaluate/flags",
            post(ofrep::evaluate_all).layer(DefaultBodyLimit::max(ofrep::MAX_BODY_BYTES)),
        )
        .route(
            "/ofrep/v1/evaluate/flags/{key}",
            post(ofrep::evaluate).layer(DefaultBodyLimit::max(ofrep::MAX_BODY_BYTES)),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let router = Router::new()
        .nest("/api", api)
        .merge(ecosystem)
        .route("/health", get(observe::health))
        .route("/metrics", get(observe::metrics))
        .route("/s/{secret}", get(sessions::open_share))
        .route("/auth/sso/start", get(sso::start))
        .route("/auth/sso/callback", get(sso::callback))
        // A share link's answer sets a session; health may say how the audit chain stands:
        // neither is for any cache.
        .route_layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
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
        // Never framed (CSP's frame-ancestors, for browsers that read only this), and no
        // window opened from elsewhere keeps a handle on the kill switch's page.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
            ),
        ))
        .layer(TraceLayer::new_for_http())
        // A handler's bug answers 500 for that request; the connection, the other requests
        // and the kill switch go on.
        .layer(CatchPanicLayer::custom(panic_response))
        // Exports and long chart ranges: off the async workers, bounded per caller.
        .layer(Extension(Arc::new(Heavy::default())))
        .layer(Extension(edge));
    // Served over HTTPS: browsers must never come back over plain HTTP.
    let router = if https {
        router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        router
    };
    router.with_state(state)
}

/// The answer to a request whose handler panicked: the JSON error shape, the detail logged.
fn panic_response(detail: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let detail = detail
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| detail.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    crate::http::error::ApiError::Internal(anyhow::anyhow!("handler panicked: {detail}"))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A handler that panics answers 500 in the usual JSON shape; the server goes on.
    #[tokio::test]
    async fn a_panicking_handler_is_a_500_not_a_dropped_connection() {
        let router: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    let parts: Vec<u8> = Vec::new();
                    // An out-of-bounds index, as a handler bug would make.
                    parts[usize::from(parts.is_empty())].to_string()
                }),
            )
            .layer(CatchPanicLayer::custom(panic_response))
            // Exports and long chart ranges: off the async workers, bounded per caller.
            .layer(Extension(Arc::new(Heavy::default())));
        let request = axum::http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
    }
}
