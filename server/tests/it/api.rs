//! The HTTP API over a real TCP socket with a real SQLite file: auth (401 vs 403), ingestion
//! (good, bad, oversize), unknown ids, and the live stream's first frame and updates.

use std::time::Duration;

use crate::support;

use cutover_core::role::Role;
use serde_json::Value;
use support::{TestApp, spiralogic};

async fn start() -> (TestApp, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    (TestApp::start(data.path(), vec![spiralogic()]).await, data)
}

/// POSTs a raw events body as `role`.
async fn post_events(
    app: &TestApp,
    role: Option<Role>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let url = format!("{}/api/rollouts/spiralogic/events", app.url);
    let mut request = app.http.post(url).body(body);
    if let Some(role) = role {
        request = request.bearer_auth(app.token(role));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ingestion_needs_a_token_and_the_ingest_role() {
    let (app, _data) = start().await;
    let body = r#"{"values":{"latency_ms":120}}"#;
    let (status, error) = post_events(&app, None, body).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "unauthenticated");
    let url = format!("{}/api/rollouts/spiralogic/events", app.url);
    let forged = app
        .http
        .post(url)
        .bearer_auth("cut_forged")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let (status, error) = post_events(&app, Some(Role::Viewer), body).await;
    assert_eq!(status, 403);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs one of: ingest")
    );
    let (status, report) = post_events(&app, Some(Role::Ingest), body).await;
    assert_eq!((status, report["accepted"].as_u64()), (200, Some(1)));
}

#[tokio::test]
async fn bad_records_are_reported_and_good_ones_kept() {
    let (app, _data) = start().await;
    let body = "{\"values\":{\"latency_ms\":120}}\n{\"values\":{\"mode\":\"turbo\"}}\n{\"values\":{\"latency_ms\":80}}\n";
    let (status, report) = post_events(&app, Some(Role::Ingest), body).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["rejected"][0]["index"], 1);
    assert_eq!(report["rejected"][0]["field"], "values.mode");

    let (status, report) =
        post_events(&app, Some(Role::Ingest), r#"[{"values":{"nope":1}}]"#).await;
    assert_eq!(status, 422);
    assert_eq!(report["rejected"][0]["field"], "values.nope");

    let (status, error) = post_events(&app, Some(Role::Ingest), "[{").await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn oversize_bodies_get_413_with_the_usual_error_shape() {
    let (app, _data) = start().await;
    let line = "{\"values\":{\"latency_ms\":120}}\n";
    let body = line.repeat(5 * 1024 * 1024 / line.len());
    let (status, error) = post_events(&app, Some(Role::Ingest), body).await;
    assert_eq!(status, 413);
    assert_eq!(error["error"]["code"], "too_large");
}

#[tokio::test]
async fn unknown_rollouts_and_endpoints_are_404() {
    let (app, _data) = start().await;
    let status = |r: reqwest::Response| r.status().as_u16();
    let viewer = Some(Role::Viewer);
    assert_eq!(
        status(app.get_as(viewer, "/api/rollouts/nope/stream").await),
        404
    );
    assert_eq!(status(app.get_as(viewer, "/api/rollouts/nope").await), 404);
    assert_eq!(status(app.get_as(viewer, "/api/nothing").await), 404);
    assert_eq!(status(app.get_as(None, "/api/rollouts").await), 401);
    let list = app.get("/api/rollouts").await;
    assert_eq!(list[0]["id"], "spiralogic");
}

/// Events of latency_ms in a tick's chart series.
fn requests_in_tick(tick: &Value) -> f64 {
    let series = tick["frame"]["series"].as_array().unwrap();
    let count = series
        .iter()
        .find(|s| s["id"] == "latency_ms.count")
        .unwrap();
    count["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["v"].as_f64())
        .sum()
}

#[tokio::test]
async fn the_stream_sends_state_and_a_tick_first_then_reflects_new_events() {
    let (app, _data) = start().await;
    let mut stream = app.stream("spiralogic").await;
    let (name, state) = stream.next().await;
    assert_eq!(
        (name.as_str(), &state["plan"]["id"]),
        ("state", &Value::from("spiralogic"))
    );
    assert_eq!(state["state"]["phase"], "not_started");
    let (name, first) = stream.next().await;
    assert_eq!(
        (name.as_str(), &first["frame"]["rollout"]),
        ("tick", &Value::from("spiralogic"))
    );
    assert_eq!(requests_in_tick(&first), 0.0);

    let body = "{\"values\":{\"latency_ms\":120}}\n".repeat(7);
    assert_eq!(post_events(&app, Some(Role::Ingest), body).await.0, 200);
    let posted = cutover_server::clock::now();
    // The first tick the server made after the events were in shows them, and it was made
    // within 3 s of them (its own time: how fast this test gets to read it is not the claim).
    let tick = loop {
        let (name, data) = stream.next().await;
        if name == "tick" && data["frame"]["at"].as_i64().unwrap() >= posted {
            break data;
        }
    };
    assert_eq!(
        requests_in_tick(&tick),
        7.0,
        "the next tick shows the events"
    );
    let after = tick["frame"]["at"].as_i64().unwrap() - posted;
    assert!(
        after < 3_000,
        "the events showed in a tick {after} ms after they were posted"
    );
}

/// After the first whole tick, each second is a delta of a few hundred bytes, and the tick
/// a viewer builds from them holds what a frame fetched fresh holds.
#[tokio::test]
async fn ticks_after_the_first_are_small_deltas_that_add_up_to_the_fresh_frame() {
    let (app, _data) = start().await;
    let body = "{\"values\":{\"latency_ms\":120,\"error\":false}}\n".repeat(50);
    assert_eq!(post_events(&app, Some(Role::Ingest), body).await.0, 200);
    let mut stream = app.stream("spiralogic").await;
    // A viewer that connects before the evaluator's first tick gets one made for it (numbered
    // 0), then the evaluator's first whole; from then on, deltas.
    while stream.next_named("tick").await["seq"] == 0 {}
    let mut sizes = Vec::new();
    while sizes.len() < 3 {
        let (name, data) = stream.next_raw().await;
        if name == "delta" {
            sizes.push(data.to_string().len());
            assert_eq!(
                data["base"].as_u64().unwrap() + 1,
                data["seq"].as_u64().unwrap()
            );
            let delta = serde_json::from_value(data).unwrap();
            let tick = stream.tick.as_mut().unwrap();
            cutover_core::delta::apply(tick, &delta).unwrap();
        }
        assert_ne!(name, "tick", "one whole tick, then deltas");
    }
    let whole = serde_json::to_string(stream.tick.as_ref().unwrap())
        .unwrap()
        .len();
    assert!(
        sizes.iter().all(|&n| n * 10 < whole),
        "deltas {sizes:?} against a whole tick of {whole} bytes"
    );

    // Nothing new arrives now, so the applied tick and a fresh frame agree on every bucket
    // both cover (the fresh one may have moved on by a bucket).
    let held = stream.tick.clone().unwrap().frame;
    let fresh: cutover_core::series::Frame = serde_json::from_value(
        app.get("/api/rollouts/spiralogic?series=15m&step=10s")
            .await["frame"]
            .clone(),
    )
    .unwrap();
    assert_eq!(held.series.len(), fresh.series.len());
    let mut compared = 0;
    for (a, b) in held.series.iter().zip(&fresh.series) {
        assert_eq!(a.id, b.id);
        for p in &a.points {
            if let Some(q) = b.points.iter().find(|q| q.t == p.t) {
                assert_eq!(p.v, q.v, "{} at {}", a.id, p.t);
                compared += 1;
            }
        }
    }
    assert!(
        compared > 80 * held.series.len(),
        "{compared} points compared"
    );
    let counted: f64 = held
        .series
        .iter()
        .find(|s| s.id == "latency_ms.count")
        .unwrap()
        .points
        .iter()
        .filter_map(|p| p.v)
        .sum();
    assert_eq!(counted, 50.0);
}

/// The sequence number in an event id `epoch-seq`.
fn seq(id: &str) -> u64 {
    id.split_once('-').unwrap().1.parse().unwrap()
}

#[tokio::test]
async fn a_viewer_resuming_with_last_event_id_gets_exactly_what_it_missed() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![support::open_plan("open", 2)]).await;
    let mut stream = app.stream("open").await;
    // The evaluator's ticks carry ids; wait for one.
    while stream.last_id.is_none() {
        stream.next().await;
    }
    let last = stream.last_id.clone().unwrap();
    drop(stream);

    // While the viewer is away: an action, and more ticks.
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/open/start",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut resumed = app.resume("open", Some(&last)).await;
    let mut event = resumed.next().await;
    let first = resumed.last_id.clone().unwrap();
    assert_eq!(seq(&first), seq(&last) + 1, "starts right after {last}");
    let mut saw_start = false;
    for _ in 0..5 {
        if (event.0 == "state" || event.0 == "update") && event.1["state"]["phase"] == "running" {
            saw_start = true;
            break;
        }
        event = resumed.next().await;
    }
    assert!(saw_start, "the missed start was replayed");

    // An id from another process (a restart) gets a fresh state first.
    let mut fresh = app.resume("open", Some("0-1")).await;
    let (name, data) = fresh.next().await;
    assert_eq!(name, "state");
    assert_eq!(data["state"]["phase"], "running");
    assert_eq!(fresh.next().await.0, "tick");
    app.stop().await;
}

/// A viewer that stops reading (a frozen wall screen, a stalled proxy) fills its buffers and
/// then loses the backlog; the fast viewer beside it still sees every change at once, and the
/// slow one, when it reads again, is resynchronised with the current state.
// Two workers: the server, the poster and the fast reader do not take turns on one thread, so
// what is timed is the server's fan-out, not this test's scheduling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_never_delays_a_fast_one() {
    use tokio::io::AsyncWriteExt;
    let (app, _data) = start().await;
    let addr = app.url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /api/rollouts/spiralogic/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        app.token(Role::Viewer)
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut fast = app.stream("spiralogic").await;
    fast.next_named("state").await;
    // The fast viewer reads all the time, beside the test, noting when each state arrives:
    // when the test itself reads is not the claim.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            let state = fast.next_named("state").await;
            let version = state["state"]["version"].as_u64();
            if arrived_tx
                .send((version, tokio::time::Instant::now()))
                .is_err()
            {
                break;
            }
        }
    });

    // Several megabytes of state changes: far more than the slow viewer's buffers hold.
    let path = "/api/rollouts/spiralogic/checklists/launch-day/items/briefed";
    let mut version = 0;
    for i in 0..300 {
        let (status, body) = app
            .post(
                Some(Role::Operator),
                path,
                serde_json::json!({"checked": i % 2 == 0}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        version = body["state"]["version"].as_u64().unwrap();
    }
    let done = tokio::time::Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (v, at) = arrived
                .recv()
                .await
                .expect("the fast viewer's stream broke");
            if v == Some(version) {
                break at;
            }
        }
    })
    .await
    .expect("the fast viewer never saw the last change");
    reader.abort();
    let late = seen.saturating_duration_since(done);
    assert!(
        late < Duration::from_secs(2),
        "the fast viewer saw the last change {late:?} after it was made"
    );

    // The slow viewer reads at last: it skipped the backlog and has the current state.
    let mut reader = tokio::io::BufReader::new(slow);
    let mut states = 0;
    let mut resync = None;
    let mut line = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        line.clear();
        use tokio::io::AsyncBufReadExt;
        let read = tokio::time::timeout_at(deadline, reader.read_line(&mut line)).await;
        let n = read.expect("the slow viewer never caught up").unwrap();
        assert!(n > 0, "stream closed");
        if line.starts_with("event: state") {
            states += 1;
        }
        if line.starts_with("event: resync") {
            resync = Some(String::new());
        } else if let Some(reason) = resync.as_mut().filter(|r| r.is_empty()) {
            *reason = line.clone();
        }
        let v = format!("\"version\":{version}");
        if line.contains(&format!("{v},")) || line.contains(&format!("{v}}}")) {
            break;
        }
    }
    assert!(
        states < 300,
        "the slow viewer was sent the whole backlog ({states} states)"
    );
    // And it was told why, before the fresh state.
    let reason = resync.expect("no resync event before the fresh state");
    assert!(
        reason.contains("events behind; they were dropped and a fresh state follows"),
        "{reason}"
    );
    app.stop().await;
}

/// `/metrics` counts what was ingested and rejected and shows every gate; `/health` gives the
/// overall status and each rollout's numbers, as `curl /health | jq .metrics` expects.
#[tokio::test]
async fn metrics_and_health_report_what_happened() {
    let (app, _data) = start().await;
    let good = "{\"values\":{\"latency_ms\":120}}\n".repeat(5);
    let bad = "{\"values\":{\"latency_ms\":-1}}\n{\"values\":{\"nope\":1}}\n";
    assert_eq!(
        post_events(&app, Some(Role::Ingest), good + bad).await.0,
        200
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .bearer_auth(app.token(Role::Viewer))
        .send()
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text().await.unwrap();
    for line in [
        "# TYPE cutover_events_ingested_total counter",
        "cutover_events_ingested_total{rollout=\"spiralogic\"} 5",
        "cutover_events_rejected_total{rollout=\"spiralogic\"} 2",
        "cutover_killed{rollout=\"spiralogic\"} 0",
        "cutover_traffic_percent{rollout=\"spiralogic\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    assert!(
        text.contains("cutover_gate_passing{rollout=\"spiralogic\",gate=\"p95-latency\"}"),
        "{text}"
    );
    let health: Value = app
        .http
        .get(format!("{}/health", app.url))
        .bearer_auth(app.token(Role::Viewer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(health["status"].is_string(), "{health}");
    let spiralogic = &health["metrics"]["spiralogic"];
    assert_eq!(spiralogic["phase"], "not_started");
    assert!(spiralogic["gates"].as_u64().unwrap() > 0, "{health}");
    assert!(health.get("audit").is_none(), "the chains only when asked");
    // An action, then the audit chain verified on request.
    let t0 = cutover_server::clock::now() + 3_600_000;
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/schedule",
            serde_json::json!({ "t0": t0 }),
        )
        .await;
    assert_eq!(status, 200);
    let audited: Value = app
        .http
        .get(format!("{}/health?audit", app.url))
        .bearer_auth(app.token(Role::Viewer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chain = &audited["audit"]["spiralogic"];
    assert_eq!(chain["intact"], true, "{audited}");
    assert!(
        chain["head"].as_str().is_some_and(|h| h.len() == 64),
        "{audited}"
    );
    // Without a token: alive, and nothing about the rollouts.
    let anonymous: Value = app.get_as(None, "/health").await.json().await.unwrap();
    assert_eq!(anonymous["live"], true);
    assert!(
        anonymous.get("metrics").is_none() && anonymous.get("status").is_none(),
        "{anonymous}"
    );
    assert_eq!(app.get_as(None, "/metrics").await.status().as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_canary_against_baseline_gate_has_series_for_both_and_its_moving_limit() {
    // A plain comparison of two reads (spiralogic's quality gate before it became a
    // sequential one): its chart draws both arms and the limit that moves with the baseline.
    let text = include_str!("../../../plans/spiralogic.toml").replace(
        r#"expr = "not_below(mean(quality{variant=\"canary\"}), mean(quality{variant=\"baseline\"}), 2%)""#,
        r#"expr = "mean(quality{variant=\"canary\"}) >= mean(quality{variant=\"baseline\"}) - 2%""#,
    );
    let plan = cutover_core::plan::parse("spiralogic.toml", &text).unwrap();
    assert!(
        plan.gates
            .iter()
            .any(|g| g.expr.starts_with("mean(quality")),
        "the plain gate replaced the comparison"
    );
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    let mut body = String::new();
    for _ in 0..5 {
        body += "{\"labels\":{\"variant\":\"canary\"},\"values\":{\"quality\":0.9}}\n";
        body += "{\"labels\":{\"variant\":\"baseline\"},\"values\":{\"quality\":0.95}}\n";
    }
    assert_eq!(post_events(&app, Some(Role::Ingest), body).await.0, 200);
    let with = app
        .get("/api/rollouts/spiralogic?series=15m&step=10s")
        .await;
    let series = with["frame"]["series"].as_array().unwrap();
    let latest = |label: &str| {
        let s = series
            .iter()
            .find(|s| s["label"] == label)
            .unwrap_or_else(|| panic!("no series {label} in {series:?}"));
        assert!(
            s["id"].as_str().unwrap().starts_with("gate:quality."),
            "{s}"
        );
        s["points"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find_map(|p| p["v"].as_f64())
    };
    let canary = latest("canary mean").unwrap();
    let baseline = latest("baseline mean").unwrap();
    let limit = latest("limit mean(quality{variant=\"baseline\"}) - 0.02").unwrap();
    assert!((canary - 0.9).abs() < 0.01, "{canary}");
    assert!((baseline - 0.95).abs() < 0.01, "{baseline}");
    assert!(
        (limit - (baseline - 0.02)).abs() < 1e-9,
        "{limit} vs {baseline}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_snapshot_can_carry_chart_series_at_a_chosen_resolution() {
    let (app, _data) = start().await;
    let plain = app.get("/api/rollouts/spiralogic").await;
    assert!(plain.get("frame").is_none(), "no series unless asked");
    let body = "{\"values\":{\"latency_ms\":120}}\n".repeat(3);
    assert_eq!(post_events(&app, Some(Role::Ingest), body).await.0, 200);
    let with = app.get("/api/rollouts/spiralogic?series=1h&step=1m").await;
    let frame = &with["frame"];
    assert_eq!(frame["step"], 60_000);
    let count = frame["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "latency_ms.count")
        .unwrap();
    let points = count["points"].as_array().unwrap();
    assert!((60..=61).contains(&points.len()), "{}", points.len());
    let total: f64 = points.iter().filter_map(|p| p["v"].as_f64()).sum();
    assert_eq!(total, 3.0);
    // A week: about 360 points, each whole 10 min buckets (30 min), the same events in them.
    let week = app.get("/api/rollouts/spiralogic?series=7d").await;
    assert_eq!(week["frame"]["step"], 30 * 60_000);
    let count = week["frame"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "latency_ms.count")
        .unwrap();
    let points = count["points"].as_array().unwrap();
    assert!((336..=337).contains(&points.len()), "{}", points.len());
    let total: f64 = points.iter().filter_map(|p| p["v"].as_f64()).sum();
    assert_eq!(total, 3.0);
    // An absolute range (a chart zoomed by dragging): ends where asked, the events in it.
    let to = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let from = to - 10 * 60_000;
    let zoomed = app
        .get(&format!("/api/rollouts/spiralogic?from={from}&to={to}"))
        .await;
    assert_eq!(zoomed["frame"]["at"], to);
    let count = zoomed["frame"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "latency_ms.count")
        .unwrap();
    let points = count["points"].as_array().unwrap();
    assert!(
        points
            .iter()
            .all(|p| p["t"].as_i64().unwrap() >= from - 10_000 && p["t"].as_i64().unwrap() <= to)
    );
    let total: f64 = points.iter().filter_map(|p| p["v"].as_f64()).sum();
    assert_eq!(total, 3.0);
    // Dragged to the newest point, a range ends in the step still filling: read up to now.
    let ahead = app
        .get(&format!(
            "/api/rollouts/spiralogic?from={from}&to={}",
            to + 60_000
        ))
        .await;
    assert!(
        ahead["frame"]["at"].as_i64().unwrap() < to + 60_000,
        "{}",
        ahead["frame"]["at"]
    );
    for bad in [
        format!("from={to}&to={from}"),
        format!("from={from}&to={}", to + 2 * 3_600_000),
        format!("from={from}"),
        format!("from={}&to={to}", to - 30 * 86_400_000),
        format!("from={from}&to={to}&series=1h"),
        format!("from=-9223372036854775808&to={to}"),
    ] {
        let response = app
            .get_as(
                Some(Role::Viewer),
                &format!("/api/rollouts/spiralogic?{bad}"),
            )
            .await;
        assert_eq!(response.status().as_u16(), 400, "{bad}");
    }
    // Past what the store keeps (8 days) is a 400 that says how far it reaches.
    let past = app
        .get_as(Some(Role::Viewer), "/api/rollouts/spiralogic?series=9d")
        .await;
    assert_eq!(past.status().as_u16(), 400);
    let body: Value = past.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("192h"),
        "{body}"
    );
    let bad = app
        .get_as(
            Some(Role::Viewer),
            "/api/rollouts/spiralogic?series=forever",
        )
        .await;
    assert_eq!(bad.status().as_u16(), 400);
    let unknown = app
        .get_as(Some(Role::Viewer), "/api/rollouts/spiralogic?serie=1h")
        .await;
    assert_eq!(unknown.status().as_u16(), 400);
    // The same JSON error shape as every other client mistake, naming the field.
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("serie"),
        "{body}"
    );
    app.stop().await;
}

/// Only `GET`/`HEAD` of a page path gets the app: a POST to an unknown path (a trace exporter
/// pointed at cutover, which takes metrics and logs) is a 404, a stale asset is a 404, a POST to an asset a 405.
#[tokio::test]
async fn the_app_answers_page_paths_only() {
    let (app, _data) = start().await;
    let http = reqwest::Client::new();
    let post = http
        .post(format!("{}/v1/traces", app.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404);
    let stale = http
        .get(format!("{}/app-0123abcd.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
    let page = http
        .get(format!("{}/r/spiralogic/wall", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let head = http
        .head(format!("{}/r/spiralogic", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let index = http
        .post(format!("{}/index.html", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 405);
    app.stop().await;
}

/// Framing and openers are refused everywhere; a share link's answer and health are never
/// cached.
#[tokio::test]
async fn pages_cannot_be_framed_and_share_answers_are_not_cached() {
    let (app, _data) = start().await;
    let http = reqwest::Client::new();
    for path in ["/", "/api/rollouts", "/health", "/s/nope"] {
        let answer = http.get(format!("{}{path}", app.url)).send().await.unwrap();
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{path}");
        assert_eq!(
            header("cross-origin-opener-policy").as_deref(),
            Some("same-origin"),
            "{path}"
        );
        if path == "/health" || path.starts_with("/s/") {
            assert_eq!(
                header("cache-control").as_deref(),
                Some("no-store"),
                "{path}"
            );
        }
    }
    app.stop().await;
}

/// Reasons and notes are a paragraph, not a document: over 4 KB is a 400 that says so.
#[tokio::test]
async fn a_reason_over_4_kb_is_refused() {
    let (app, _data) = start().await;
    let long = "x".repeat(4 * 1024 + 1);
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/kill",
            serde_json::json!({ "reason": long }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("at most 4096 bytes"), "{body}");
    let fits = "x".repeat(4 * 1024);
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/pause",
            serde_json::json!({ "reason": fits }),
        )
        .await;
    assert_ne!(status, 400, "{body}");
    app.stop().await;
}
