//! Gates and triggers through the real server: a gate must hold before progress is allowed
//! (the refusal says how long it has held), and a kill trigger rolls the rollout back by itself,
//! recorded in the audit log as the system; an alert trigger is recorded once per episode.

use crate::fixtures;
use crate::support;

use std::time::Duration;

use cutover_core::role::Role;
use serde_json::{Value, json};
use support::TestApp;

fn plan_text() -> String {
    fixtures::two_stage_plan(
        "fast",
        "Fast gates",
        r#"
[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 700ms"
window = "10s"
hold = "10s"

[[trigger]]
id = "slow"
expr = "p95(latency_ms) > 1s"
window = "10s"
for = "2s"
action = "alert"

[[trigger]]
id = "breach"
expr = "p95(latency_ms) > 2s"
window = "10s"
for = "2s"
action = "kill"
"#,
    )
}

async fn push(app: &TestApp, latency: f64, n: usize) {
    let body = format!("{{\"values\":{{\"latency_ms\":{latency}}}}}\n").repeat(n);
    let response = app
        .http
        .post(format!("{}/api/rollouts/fast/events", app.url))
        .bearer_auth(app.token(Role::Ingest))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

fn gate(snapshot: &Value) -> &Value {
    &snapshot["gates"][0]
}

#[tokio::test]
async fn progress_waits_for_the_gate_to_hold_then_goes_through() {
    let data = tempfile::tempdir().unwrap();
    let plan = cutover_core::plan::parse("fast.toml", &plan_text()).unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    let (status, _) = app
        .post(Some(Role::Operator), "/api/rollouts/fast/start", json!({}))
        .await;
    assert_eq!(status, 200);

    // No data yet: the gate says so and progress is refused for it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let snapshot = app.get("/api/rollouts/fast").await;
    assert_eq!(gate(&snapshot)["verdict"], "no_data");
    let (status, error) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/fast/progress",
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gate p95"),
        "{error}"
    );

    push(&app, 250.0, 50).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let snapshot = app.get("/api/rollouts/fast").await;
    assert_eq!(gate(&snapshot)["verdict"], "pass");
    assert!(
        gate(&snapshot)["comparisons"][0]["left_value"]
            .as_f64()
            .unwrap()
            < 260.0
    );
    let (status, error) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/fast/progress",
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("gate p95") && message.contains("10s"),
        "{message}"
    );

    // Refused until the hold is complete, then accepted: poll as a CI job would.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let snapshot = loop {
        // Traffic keeps flowing, as in a real canary: the 10 s window never runs dry before
        // the 10 s hold is complete (it sometimes did when the only events came first).
        push(&app, 250.0, 10).await;
        let (status, body) = app
            .post(
                Some(Role::Operator),
                "/api/rollouts/fast/progress",
                json!({}),
            )
            .await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 409, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gate never held: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(snapshot["traffic"], 100.0);
    let audit = app.get("/api/rollouts/fast/audit").await;
    let evidence = &audit["entries"][0]["evidence"]["gates"][0];
    assert_eq!(
        (evidence["id"].as_str(), evidence["verdict"].as_str()),
        (Some("p95"), Some("pass"))
    );
}

#[tokio::test]
async fn a_kill_trigger_rolls_back_by_itself_and_the_audit_says_so() {
    let data = tempfile::tempdir().unwrap();
    let plan = cutover_core::plan::parse("fast.toml", &plan_text()).unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    app.post(Some(Role::Operator), "/api/rollouts/fast/start", json!({}))
        .await;
    push(&app, 3000.0, 40).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let snapshot = loop {
        let snapshot = app.get("/api/rollouts/fast").await;
        if snapshot["state"]["phase"] == "killed" {
            break snapshot;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trigger never fired: {snapshot}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(snapshot["traffic"], 0.0);
    assert_eq!(snapshot["state"]["killed"]["by"]["name"], "trigger breach");
    assert_eq!(snapshot["state"]["killed"]["by"]["role"], "system");
    let audit = app.get("/api/rollouts/fast/audit").await;
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"]["action"] == "kill")
        .unwrap();
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("trigger breach"),
        "{entry}"
    );
    // Still breaching, but one kill per episode and nothing left to kill (the alert
    // trigger, over its lower line too, fired once as well).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let audit = app.get("/api/rollouts/fast/audit").await;
    let mut actions = actions(&audit);
    actions.sort_unstable();
    assert_eq!(actions, ["alert", "kill", "start"]);
}

fn actions(audit: &Value) -> Vec<String> {
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"]["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_alert_trigger_is_recorded_once_per_episode_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let plan = cutover_core::plan::parse("fast.toml", &plan_text()).unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    app.post(Some(Role::Operator), "/api/rollouts/fast/start", json!({}))
        .await;
    // Over the alert's 1 s, under the kill's 2 s.
    push(&app, 1500.0, 40).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let audit = loop {
        let audit = app.get("/api/rollouts/fast/audit").await;
        if actions(&audit).contains(&"alert".to_string()) {
            break audit;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert never fired: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"]["trigger"], "slow");
    assert_eq!(
        (&entry["actor"]["name"], &entry["actor"]["role"]),
        (&json!("trigger slow"), &json!("system"))
    );
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("trigger slow"),
        "{entry}"
    );
    assert_eq!(entry["before"], entry["after"]);
    // Still over the line: the same episode, so no second record; the rollout runs on.
    push(&app, 1500.0, 40).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let audit = app.get("/api/rollouts/fast/audit").await;
    assert_eq!(actions(&audit), ["alert", "start"]);
    let snapshot = app.get("/api/rollouts/fast").await;
    assert_eq!(snapshot["state"]["phase"], "running");
}

fn events_in(tick: &Value) -> f64 {
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

/// The first `tick` event of the stream.
#[tokio::test]
async fn hold_timers_and_chart_history_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let plan = || cutover_core::plan::parse("fast.toml", &plan_text()).unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    app.post(Some(Role::Operator), "/api/rollouts/fast/start", json!({}))
        .await;
    push(&app, 250.0, 40).await;
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let before = app.get("/api/rollouts/fast").await;
    let held_before = gate(&before)["held_for"].as_i64().unwrap();
    assert!(held_before >= 4000, "{before}");
    app.stop().await;

    let app = TestApp::start(data.path(), vec![plan()]).await;
    assert_eq!(
        events_in(&app.stream("fast").await.next_named("tick").await),
        40.0,
        "chart history restored"
    );
    push(&app, 250.0, 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = app.get("/api/rollouts/fast").await;
    let held_after = gate(&after)["held_for"].as_i64().unwrap();
    assert!(
        held_after > held_before,
        "hold timer kept: {held_before} then {held_after}"
    );
    assert_eq!(after["state"]["phase"], "running");
}

#[tokio::test]
async fn health_and_metrics_report_gates_traffic_and_kills() {
    let data = tempfile::tempdir().unwrap();
    let plan = cutover_core::plan::parse("fast.toml", &plan_text()).unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    let health = || async {
        app.http
            .get(format!("{}/health", app.url))
            .bearer_auth(app.token(Role::Viewer))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let metrics = || async {
        app.http
            .get(format!("{}/metrics", app.url))
            .bearer_auth(app.token(Role::Viewer))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        health().await["status"],
        "degraded",
        "no data is not healthy"
    );

    app.post(Some(Role::Operator), "/api/rollouts/fast/start", json!({}))
        .await;
    push(&app, 250.0, 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = health().await;
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["metrics"]["fast"]["traffic"], 10.0);
    assert!(h["metrics"]["fast"]["values"]["p95"].as_f64().unwrap() < 300.0);
    let text = metrics().await;
    assert!(
        text.contains("cutover_gate_passing{rollout=\"fast\",gate=\"p95\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("cutover_traffic_percent{rollout=\"fast\"} 10"),
        "{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(
            series.starts_with("cutover_") && series.ends_with('}'),
            "{line}"
        );
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    app.post(
        Some(Role::Lead),
        "/api/rollouts/fast/kill",
        json!({"reason": "drill"}),
    )
    .await;
    assert_eq!(health().await["status"], "killed");
    assert!(
        metrics()
            .await
            .contains("cutover_killed{rollout=\"fast\"} 1")
    );
}
