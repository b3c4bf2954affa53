//! The server as an attacker or a failing network would treat it: parameters that overflow,
//! retries with one idempotency key, oversized reports, junk labels, slow clients. Each test
//! fails on the code before the fix it names.

use std::time::{Duration, Instant};

use crate::support;

use cutover_core::role::Role;
use serde_json::{Value, json};
use support::{TestApp, open_plan, spiralogic};

async fn start() -> (TestApp, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    (TestApp::start(data.path(), vec![spiralogic()]).await, data)
}

/// Huge or negative steps, ranges and lifetimes are a 400 with the usual error shape, and the
/// server still answers at once afterwards (they used to overflow i64 arithmetic: a panic in
/// debug builds, a loop of 10^15 points holding the metrics lock in release builds).
#[tokio::test]
async fn overflowing_durations_are_refused_and_the_server_keeps_answering() {
    let (app, _data) = start().await;
    let huge = "9223372036854775807ms";
    for path in [
        format!("/api/rollouts/spiralogic?series=1h&step={huge}"),
        "/api/rollouts/spiralogic?series=1h&step=2h".to_string(),
        format!("/api/rollouts/spiralogic?series={huge}"),
        format!("/api/rollouts/spiralogic/export.csv?step={huge}"),
        "/api/rollouts/spiralogic/export.csv?since=1h&step=106751991167d".to_string(),
        format!("/api/rollouts/spiralogic/export.csv?since={huge}"),
        "/api/rollouts/spiralogic/export.csv?since=0ms".to_string(),
    ] {
        let started = Instant::now();
        let response = app.get_as(Some(Role::Viewer), &path).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took long"
        );
    }
    for life in [huge, "106751991167d", "0ms", "400d"] {
        let (status, body) = app
            .post(
                Some(Role::Lead),
                "/api/rollouts/spiralogic/shares",
                json!({ "expires_in": life }),
            )
            .await;
        assert_eq!(status, 400, "expires_in {life}: {body}");
    }
    let (status, _) = app
        .post(
            Some(Role::Lead),
            "/api/rollouts/spiralogic/shares",
            json!({ "expires_in": "72h" }),
        )
        .await;
    assert_eq!(status, 201, "a sensible lifetime is still fine");
    let health = app.get_as(None, "/health").await;
    assert_eq!(health.status().as_u16(), 200);
    // A step within the range still works.
    let body = app.get("/api/rollouts/spiralogic?series=1h&step=1m").await;
    assert!(
        body["frame"]["series"][0]["points"]
            .as_array()
            .unwrap()
            .len()
            <= 61
    );
}

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.url))
        .bearer_auth(app.token(Role::Lead))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A key replays its first answer for the same request, refuses a different request under it
/// (a kill reusing a progress's key is a 422, not a silent 200), and is claimed atomically:
/// ten concurrent progresses with one key move one stage.
#[tokio::test]
async fn an_idempotency_key_is_bound_to_its_request_and_claimed_once() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("keys", 12)]).await;
    let (status, _) = app
        .post(Some(Role::Lead), "/api/rollouts/keys/start", json!({}))
        .await;
    assert_eq!(status, 200);

    let progress = "/api/rollouts/keys/progress";
    let answers = futures::future::join_all(
        (0..10).map(|_| post_with_key(&app, progress, "burst-1", json!({}))),
    )
    .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, &answers[0].1, "every retry gets the first answer");
    }
    let snapshot = app.get("/api/rollouts/keys").await;
    assert_eq!(
        snapshot["state"]["stage"], 1,
        "ten requests, one key: one stage"
    );

    let (status, body) = post_with_key(
        &app,
        "/api/rollouts/keys/kill",
        "burst-1",
        json!({ "reason": "p95 over the line" }),
    )
    .await;
    assert_eq!(status, 422, "a different request under a used key: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("different request")
    );
    // The same action with another reason is another request too.
    let (status, _) = post_with_key(
        &app,
        progress,
        "burst-1",
        json!({ "reason": "other words" }),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        app.get("/api/rollouts/keys").await["state"]["phase"],
        "running"
    );

    // A refusal the state can lift is not replayed: the retry decides again.
    let (status, _) = post_with_key(
        &app,
        "/api/rollouts/keys/resume",
        "resume-1",
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(status, 409, "resume while running is refused");
    let (status, _) = post_with_key(
        &app,
        "/api/rollouts/keys/kill",
        "kill-1",
        json!({"reason": "drill"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post_with_key(
        &app,
        "/api/rollouts/keys/resume",
        "resume-1",
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let long_key = "k".repeat(300);
    let (status, _) = post_with_key(&app, progress, &long_key, json!({})).await;
    assert_eq!(status, 400);
    let audit = app.get("/api/rollouts/keys/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["resume", "kill", "progress", "start"]);
}

/// A thousand clients that never finish their headers neither starve the kill switch nor hold
/// their connections past the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_cannot_delay_a_kill_and_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("slow", 2)]).await;
    let (status, _) = app
        .post(Some(Role::Operator), "/api/rollouts/slow/start", json!({}))
        .await;
    assert_eq!(status, 200);
    let addr = app.url.trim_start_matches("http://").to_string();
    // Half send part of their headers; half connect and send nothing at all.
    let mut slow = Vec::new();
    for i in 0..1_000 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET /api/rollouts HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    let started = Instant::now();
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/slow/kill",
            json!({ "reason": "under a slowloris" }),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(1), "the kill took {took:?}");
    // Past the header timeout every slow connection has been closed by the server.
    tokio::time::sleep(cutover_server::HEADER_READ_TIMEOUT + Duration::from_secs(2)).await;
    let mut closed = 0;
    for stream in &mut slow {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        // EOF, a reset, or an error answer (408) and then EOF: the server let go.
        if matches!(read, Ok(Ok(_)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        slow.len(),
        "connections still held open by slow clients"
    );
    app.stop().await;
}

/// Editing a running rollout's plan (a stage inserted before the current one) keeps it on the
/// same stage by id and records the change; a plan that drops the current stage is refused.
#[tokio::test]
async fn a_plan_edit_never_moves_a_running_rollout_silently() {
    let data = tempfile::tempdir().unwrap();
    let plan = |stages: &str| {
        let text = format!(
            "[rollout]\nid = \"edit\"\ntitle = \"Edit\"\n{stages}\n[[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n"
        );
        cutover_core::plan::parse("edit.toml", &text).unwrap()
    };
    let before = "[[stage]]\nid = \"canary\"\ntraffic = 5\n[[stage]]\nid = \"ga\"\ntraffic = 100\n";
    let app = TestApp::start(data.path(), vec![plan(before)]).await;
    let (status, _) = app
        .post(Some(Role::Operator), "/api/rollouts/edit/start", json!({}))
        .await;
    assert_eq!(status, 200);
    app.stop().await;

    let inserted = format!("[[stage]]\nid = \"shadow\"\ntraffic = 0\nshadow = true\n{before}");
    let app = TestApp::start(data.path(), vec![plan(&inserted)]).await;
    let snapshot = app.get("/api/rollouts/edit").await;
    assert_eq!(
        snapshot["state"]["stage"], 1,
        "still the canary: {snapshot}"
    );
    assert_eq!(snapshot["traffic"], 5.0, "traffic did not move: {snapshot}");
    let audit = app.get("/api/rollouts/edit/audit").await;
    let newest = &audit["entries"][0];
    assert_eq!(newest["action"]["action"], "plan_changed", "{audit}");
    assert!(
        newest["reason"]
            .as_str()
            .unwrap()
            .contains("stage canary moved from #1 to #2 of 3"),
        "{newest}"
    );
    app.stop().await;

    // A plan file that lost the current stage: the server still starts (with its other
    // rollouts), this rollout is served under the plan it ran under, read-only but for the
    // kill, and says so.
    let dropped = "[[stage]]\nid = \"ga\"\ntraffic = 100\n";
    let app = TestApp::start(
        data.path(),
        vec![plan(dropped), crate::support::open_plan("other", 2)],
    )
    .await;
    let snapshot = app.get("/api/rollouts/edit").await;
    let why = snapshot["plan_mismatch"].as_str().unwrap_or_default();
    assert!(why.contains("stage \"canary\""), "{snapshot}");
    assert_eq!(
        snapshot["traffic"], 5.0,
        "still serving its last state: {snapshot}"
    );
    let flags = app.get("/api/rollouts/edit/flags").await;
    assert_eq!(flags["traffic"], 5.0, "{flags}");
    let (status, refused) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/edit/progress",
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.to_string().contains("only a kill"), "{refused}");
    let (status, killed) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/edit/kill",
            json!({"reason": "plan file broken mid-launch"}),
        )
        .await;
    assert_eq!(status, 200, "{killed}");
    assert_eq!(killed["state"]["phase"], "killed");
    assert_eq!(app.get("/api/rollouts/edit/flags").await["killed"], true);
    // The other rollout is untouched.
    let (status, _) = app
        .post(Some(Role::Operator), "/api/rollouts/other/start", json!({}))
        .await;
    assert_eq!(status, 200);
    app.stop().await;
    // Fixed: the stage is back, the rollout maps and acts again.
    let app = TestApp::start(data.path(), vec![plan(&inserted)]).await;
    let snapshot = app.get("/api/rollouts/edit").await;
    assert!(snapshot["plan_mismatch"].is_null(), "{snapshot}");
    assert_eq!(snapshot["state"]["phase"], "killed");
    app.stop().await;
}

/// SIGTERM ends live streams, stops the process within seconds, and hands the evaluator lease
/// over at once instead of leaving the next replica to wait it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_streams_and_releases_the_lease() {
    use tokio::io::AsyncBufReadExt;
    let data = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(
        plans.path().join("term.toml"),
        "[rollout]\nid = \"term\"\ntitle = \"Term\"\n[[stage]]\nid = \"a\"\ntraffic = 100\n[[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_cutover");
    let data_dir = data.path().to_str().unwrap();
    let added = tokio::process::Command::new(bin)
        .args([
            "user",
            "add",
            "watcher",
            "--role",
            "viewer",
            "--data-dir",
            data_dir,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let token = String::from_utf8(added.stdout).unwrap().trim().to_string();
    let mut server = tokio::process::Command::new(bin)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
            "--plans",
        ])
        .arg(plans.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the server printed no address")
            .unwrap()
            .expect("the server exited");
        if let Some(at) = line.split(" at ").nth(1) {
            break at.trim().to_string();
        }
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while http
        .get(format!("{url}/health"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["evaluator"]
        != true
    {
        assert!(Instant::now() < deadline, "never took the evaluator lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stream = http
        .get(format!("{url}/api/rollouts/term/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut stream = support::EventStream::new(stream);
    assert_eq!(stream.next().await.0, "state");

    let pid = server.id().unwrap().to_string();
    let sent = Instant::now();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    // Inside the 10 s drain: the stream is told to end, it is not cut off at the drain's end
    // (a loaded machine's debug build takes a few seconds to stop).
    let status = tokio::time::timeout(Duration::from_secs(8), server.wait())
        .await
        .expect("still running 8 s after SIGTERM with a stream open")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(sent.elapsed() < Duration::from_secs(8));
    assert!(stream.ended().await, "the live stream ended");

    let storage = cutover_server::store::Storage::open_sqlite(data.path())
        .await
        .unwrap();
    let now = cutover_server::clock::now();
    assert!(
        storage
            .acquire_lease("evaluator", "next-replica", now, 5_000)
            .await
            .unwrap(),
        "the lease was handed over, not left to run out"
    );
}

/// A hold does not grow while the server is down: a gate that had held several seconds before a
/// crash and a 15 s outage shows about that after the restart, not the outage on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_does_not_count_the_time_the_server_was_down() {
    let data = tempfile::tempdir().unwrap();
    let plan = || {
        cutover_core::plan::parse(
            "hold.toml",
            "[rollout]\nid = \"hold\"\ntitle = \"Hold\"\n[[stage]]\nid = \"canary\"\ntraffic = 10\n\
             [[stage]]\nid = \"ga\"\ntraffic = 100\n[[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n\
             [[gate]]\nid = \"p95\"\nexpr = \"p95(latency_ms) <= 700ms\"\nwindow = \"5m\"\nhold = \"10m\"\n",
        )
        .unwrap()
    };
    let push = |app: &TestApp| {
        app.http
            .post(format!("{}/api/rollouts/hold/events", app.url))
            .bearer_auth(app.token(Role::Ingest))
            .body("{\"values\":{\"latency_ms\":100}}\n".repeat(20))
            .send()
    };
    let held = |s: &Value| s["gates"][0]["held_for"].as_i64();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    push(&app).await.unwrap();
    let pushed_at = cutover_server::clock::now();
    let before = app
        .wait_for("/api/rollouts/hold", "a hold of 7 s", |s| {
            held(s).filter(|h| *h >= 7_000)
        })
        .await;
    // Metric buckets are written every 5 s (`SAVE_EVERY`), so a crash loses up to the last 5 s
    // of events: crash only once a write made after the push is in the database (on a loaded
    // machine a 7 s hold does not prove one happened).
    support::wait_for_saved_buckets(data.path(), "hold", pushed_at).await;
    // The hold just before the crash: it kept growing during that wait.
    let before = held(&app.get("/api/rollouts/hold").await).map_or(before, |h| h.max(before));
    app.crash().await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let app = TestApp::start(data.path(), vec![plan()]).await;
    // The events from before the crash are still in the 5 m window (a loaded machine can take
    // over a minute to get here): the gate passes again at
    // once, and its hold resumes from where it was.
    let after = app
        .wait_for(
            "/api/rollouts/hold",
            "the first evaluation after the restart",
            |s| {
                (s["gates"][0]["verdict"] == "pass")
                    .then(|| held(s))
                    .flatten()
            },
        )
        .await;
    assert!(
        after < before + 9_000,
        "held {before} ms before a 15 s outage and {after} ms after it: the outage counted"
    );
    app.stop().await;
}

/// A service's ingest token can be limited to its own rollout: it pushes there and nowhere
/// else, and reads nothing else.
#[tokio::test]
async fn an_ingest_token_limited_to_one_rollout_cannot_push_to_another() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(
        data.path(),
        vec![open_plan("mine", 2), open_plan("theirs", 2)],
    )
    .await;
    let storage = cutover_server::store::Storage::open_sqlite(data.path())
        .await
        .unwrap();
    let token = storage
        .upsert_user_for(
            "svc-mine",
            Role::Ingest,
            Some("mine"),
            cutover_server::clock::now(),
        )
        .await
        .unwrap();
    let push = |rollout: &str| {
        app.http
            .post(format!("{}/api/rollouts/{rollout}/events", app.url))
            .bearer_auth(&token)
            .body("{\"values\":{\"latency_ms\":5}}\n")
            .send()
    };
    assert_eq!(push("mine").await.unwrap().status().as_u16(), 200);
    let refused = push("theirs").await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may only use rollout \"mine\""),
        "{body}"
    );
    let listed: Value = app
        .http
        .get(format!("{}/api/rollouts", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    app.stop().await;
}
