//! Actuators against real receivers: a webhook on a loopback port that fails before it
//! succeeds, and an env file on disk. A kill answers at once while the webhook is down, and is
//! retried until acknowledged; the snapshot shows how far each actuator has got.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use cutover_core::role::Role;
use serde_json::{Value, json};
use support::TestApp;

/// What the webhook receiver saw: each call's Authorization header and body.
type Calls = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook receiver; it answers 503 while `fail_next` is above zero (counting it down).
async fn receiver() -> (String, Calls, Arc<AtomicUsize>) {
    let calls: Calls = Arc::default();
    let fail_next = Arc::new(AtomicUsize::new(0));
    let (seen, failing) = (calls.clone(), fail_next.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let (seen, failing) = (seen.clone(), failing.clone());
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                seen.lock().unwrap().push((auth, body.0));
                let fail = failing
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if fail {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls, fail_next)
}

fn plan(hook: &str, env_file: &std::path::Path) -> cutover_core::plan::Plan {
    // CARGO_PKG_NAME is set for every test process: a real environment variable to read.
    let text = format!(
        r#"
[rollout]
id = "act"
title = "Actuated"

[rollback]
flags = {{ NEW_PATH = false, READONLY = true }}

[[stage]]
id = "canary"
traffic = 10
flags = {{ NEW_PATH = true, MODE = "canary" }}

[[stage]]
id = "ga"
traffic = 100

[[metric]]
id = "latency_ms"
kind = "distribution"

[[actuator]]
id = "hook"
kind = "webhook"
url = "{hook}"
secret_env = "CARGO_PKG_NAME"
allow_private = true

[[actuator]]
id = "env"
kind = "env_file"
path = "{}"
"#,
        env_file.display()
    );
    cutover_core::plan::parse("act.toml", &text).unwrap()
}

fn actuator<'a>(snapshot: &'a Value, id: &str) -> &'a Value {
    snapshot["actuators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
}

/// Polls the snapshot until actuator `id` has applied `version`.
async fn applied(app: &TestApp, id: &str, version: u64) -> Value {
    let what = format!("{id} applied version {version}");
    app.wait_for("/api/rollouts/act", &what, |snapshot| {
        let a = actuator(snapshot, id);
        (a["state"] == "applied" && a["version"] == version).then(|| a.clone())
    })
    .await
}

#[tokio::test]
async fn a_kill_is_retried_until_the_webhook_acknowledges_it_and_the_env_file_follows() {
    let data = tempfile::tempdir().unwrap();
    let env_file = data.path().join("conf").join(".env.act");
    let (hook, calls, fail_next) = receiver().await;
    let app = TestApp::start(data.path(), vec![plan(&hook, &env_file)]).await;
    // At start-up the world converges on the stored state (not started).
    applied(&app, "hook", 0).await;
    applied(&app, "env", 0).await;

    let (status, body) = app
        .post(Some(Role::Operator), "/api/rollouts/act/start", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    applied(&app, "env", 1).await;
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains("\nMODE=canary\nNEW_PATH=true\n"), "{text}");
    assert!(text.contains("\nCUTOVER_TRAFFIC=10\n"), "{text}");
    applied(&app, "hook", 1).await;

    // The webhook fails the next three calls; the kill still answers at once.
    fail_next.store(3, Ordering::SeqCst);
    calls.lock().unwrap().clear();
    let started = tokio::time::Instant::now();
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/act/kill",
            json!({"reason": "errors"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a kill never waits for actuators"
    );
    let version = body["state"]["version"].as_u64().unwrap();
    let hook_status = applied(&app, "hook", version).await;
    assert_eq!(
        hook_status["attempts"], 4,
        "three failures, then acknowledged: {hook_status}"
    );
    let seen = calls.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for (auth, body) in &seen {
        assert_eq!(auth.as_deref(), Some("Bearer cutover-server"));
        assert_eq!(body["killed"], true);
        assert_eq!(body["traffic"], 0.0);
        assert_eq!(body["version"], version);
        assert_eq!(
            body["flags"],
            json!({ "NEW_PATH": false, "READONLY": true }),
            "a kill publishes the plan's rollback flags, not the stage's and not nothing"
        );
    }

    applied(&app, "env", version).await;
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains("\nCUTOVER_KILLED=true\n"), "{text}");
    assert!(text.contains("\nNEW_PATH=false\nREADONLY=true\n"), "{text}");
    assert!(!text.contains("MODE"), "no stage flags once killed: {text}");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_webhook_shows_as_failed_with_its_error() {
    let data = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback: every call fails.
    let app = TestApp::start(
        data.path(),
        vec![plan("http://127.0.0.1:9/hook", &data.path().join(".env"))],
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = app.get("/api/rollouts/act").await;
        let hook = actuator(&snapshot, "hook");
        if hook["state"] == "failed" && hook["attempts"].as_u64() >= Some(2) {
            let error = hook["error"].as_str().unwrap();
            assert!(error.contains("cannot reach the webhook"), "{error}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{hook}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Actions are not held up by it.
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/act/kill",
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}
