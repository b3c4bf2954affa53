//! The HTTP API over a real TCP socket with a real SQLite file: auth (401 vs 403), ingestion
//! (good, bad, oversize), unknown ids, and the live stream's first frame and updates.

use std::time::Duration;

use cutover_core::role::Role;
use cutover_server::state::now;
use cutover_server::storage::Storage;
use cutover_server::{AppState, serve};
use futures::StreamExt;
use serde_json::Value;

const PLAN: &str = include_str!("../../plans/spiralogic.toml");

struct TestApp {
    url: String,
    http: reqwest::Client,
    ingest: String,
    viewer: String,
    _data: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestApp {
    async fn start() -> TestApp {
        let data = tempfile::tempdir().unwrap();
        let storage = Storage::open_sqlite(data.path()).await.unwrap();
        let ingest = storage
            .upsert_user("svc", Role::Ingest, now())
            .await
            .unwrap();
        let viewer = storage
            .upsert_user("vic", Role::Viewer, now())
            .await
            .unwrap();
        let plan = cutover_core::plan::parse("spiralogic.toml", PLAN).unwrap();
        let state = AppState::new(storage, vec![plan]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let ticking = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                for r in ticking.rollouts.values() {
                    r.live.publish(now());
                }
            }
        });
        tokio::spawn(serve(listener, state, async {
            let _ = rx.await;
        }));
        TestApp {
            url,
            http: reqwest::Client::new(),
            ingest,
            viewer,
            _data: data,
            _shutdown: tx,
        }
    }

    async fn post_events(
        &self,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let url = format!("{}/api/rollouts/spiralogic/events", self.url);
        let mut request = self.http.post(url).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn ingestion_needs_a_token_and_the_ingest_role() {
    let app = TestApp::start().await;
    let body = r#"{"values":{"latency_ms":120}}"#;
    let (status, error) = app.post_events(None, body).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "unauthenticated");
    assert_eq!(app.post_events(Some("cut_forged"), body).await.0, 401);
    let (status, error) = app.post_events(Some(&app.viewer), body).await;
    assert_eq!(status, 403);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs one of: ingest")
    );
    let (status, report) = app.post_events(Some(&app.ingest), body).await;
    assert_eq!((status, report["accepted"].as_u64()), (200, Some(1)));
}

#[tokio::test]
async fn bad_records_are_reported_and_good_ones_kept() {
    let app = TestApp::start().await;
    let body = "{\"values\":{\"latency_ms\":120}}\n{\"values\":{\"mode\":\"turbo\"}}\n{\"values\":{\"latency_ms\":80}}\n";
    let (status, report) = app.post_events(Some(&app.ingest), body).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["rejected"][0]["index"], 1);
    assert_eq!(report["rejected"][0]["field"], "values.mode");

    let (status, report) = app
        .post_events(Some(&app.ingest), r#"[{"values":{"nope":1}}]"#)
        .await;
    assert_eq!(status, 422);
    assert_eq!(report["rejected"][0]["field"], "values.nope");

    let (status, error) = app.post_events(Some(&app.ingest), "[{").await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn oversize_bodies_get_413_with_the_usual_error_shape() {
    let app = TestApp::start().await;
    let line = "{\"values\":{\"latency_ms\":120}}\n";
    let body = line.repeat(5 * 1024 * 1024 / line.len());
    let (status, error) = app.post_events(Some(&app.ingest), body).await;
    assert_eq!(status, 413);
    assert_eq!(error["error"]["code"], "too_large");
}

#[tokio::test]
async fn unknown_rollouts_and_endpoints_are_404() {
    let app = TestApp::start().await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.url)).send();
    assert_eq!(
        get("/api/rollouts/nope/stream")
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(get("/api/nothing").await.unwrap().status().as_u16(), 404);
    let list: Value = get("/api/rollouts").await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["id"], "spiralogic");
}

/// The JSON of the next SSE event that carries data.
async fn next_frame(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
) -> Value {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                return serde_json::from_str(data).unwrap();
            }
            continue;
        }
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        let chunk = next.unwrap().unwrap().unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn requests_in_frame(frame: &Value) -> f64 {
    let points = frame["series"][0]["points"].as_array().unwrap();
    points.iter().filter_map(|p| p["v"].as_f64()).sum()
}

#[tokio::test]
async fn the_stream_sends_a_frame_first_then_reflects_new_events() {
    let app = TestApp::start().await;
    let url = format!("{}/api/rollouts/spiralogic/stream", app.url);
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut buf = String::new();
    let first = next_frame(&mut stream, &mut buf).await;
    assert_eq!(first["rollout"], "spiralogic");
    assert_eq!(requests_in_frame(&first), 0.0);

    let body = "{\"values\":{\"latency_ms\":120}}\n".repeat(7);
    assert_eq!(app.post_events(Some(&app.ingest), body).await.0, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let frame = next_frame(&mut stream, &mut buf).await;
        if requests_in_frame(&frame) == 7.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "7 requests never showed in the stream"
        );
    }
}
