//! A stage that promotes itself through the real server: nothing while paused, then, once
//! resumed and ready, the system progresses it, recorded with the gate evidence it went on.

use crate::support;

use std::time::Duration;

use cutover_core::role::Role;
use serde_json::{Value, json};
use support::TestApp;

const PLAN: &str = r#"
[rollout]
id = "auto"
title = "Auto"

[[stage]]
id = "canary"
traffic = 5
min_duration = "5s"
auto_progress = true

[[stage]]
id = "ga"
traffic = 100

[[metric]]
id = "latency_ms"
kind = "distribution"
unit = "ms"

[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 700ms"
window = "10s"
hold = "10s"
stages = ["canary"]
"#;

fn stage(s: &Value) -> Option<u64> {
    s["state"]["stage"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_stage_promotes_itself_unless_paused_with_its_evidence() {
    let data = tempfile::tempdir().unwrap();
    let plan = cutover_core::plan::parse("auto.toml", PLAN).unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    for action in ["start", "pause"] {
        let (status, body) = app
            .post(
                Some(Role::Operator),
                &format!("/api/rollouts/auto/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    // Healthy traffic all along, as a service would send it.
    let (url, token, http) = (
        app.url.clone(),
        app.token(Role::Ingest).to_string(),
        app.http.clone(),
    );
    let pusher = tokio::spawn(async move {
        loop {
            let _ = http
                .post(format!("{url}/api/rollouts/auto/events"))
                .bearer_auth(&token)
                .body("{\"values\":{\"latency_ms\":120}}\n".repeat(5))
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // Paused: the gate holds and the minimum passes, and nothing moves.
    app.wait_for_within(
        "/api/rollouts/auto",
        "the gate held",
        Duration::from_secs(40),
        |s| (s["gates"][0]["held_for"].as_i64() >= Some(10_000)).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paused = app.get("/api/rollouts/auto").await;
    assert_eq!(
        (paused["state"]["phase"].as_str(), stage(&paused)),
        (Some("paused"), Some(0))
    );
    // Resumed: the system promotes it, once ready.
    let (status, body) = app
        .post(Some(Role::Lead), "/api/rollouts/auto/resume", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_for_within("/api/rollouts/auto", "ga", Duration::from_secs(40), |s| {
        (stage(s) == Some(1)).then_some(())
    })
    .await;
    pusher.abort();
    let page = app.get("/api/rollouts/auto/audit").await;
    let newest = &page["entries"][0];
    assert_eq!(
        newest["action"],
        json!({"action": "auto_progress", "stage": "canary"}),
        "{page}"
    );
    assert_eq!(newest["actor"]["role"], "system");
    assert_eq!(newest["actor"]["name"], "auto_progress");
    assert!(
        newest["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("on to ga at 100%"),
        "{newest}"
    );
    let gate = &newest["evidence"]["gates"][0];
    assert_eq!(
        (gate["id"].as_str(), gate["verdict"].as_str()),
        (Some("p95"), Some("pass")),
        "{newest}"
    );
    assert!(gate["samples"].as_u64() > Some(0), "{newest}");
    // Exactly one promotion: nothing after it.
    let promotions = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"]["action"] == "auto_progress")
        .count();
    assert_eq!(promotions, 1);
    app.stop().await;
}
