//! Rollback to a known state: a kill publishes the plan's rollback flags (not "everything
//! off") on `/flags` and to the env file; a step back returns to the previous stage's traffic
//! and flags, with a reason, audited and marked on the charts; a `step_back` trigger retreats
//! once per episode. And the watch after launch: hypercare keeps triggers armed until a close.

use std::time::Duration;

use cutover_core::role::Role;
use serde_json::{Value, json};

use crate::support::TestApp;

/// Three stages with flags, a `[rollback]`, a stage with its own rollback flags, an env file
/// and (if `trigger`) a step-back trigger on slow latency.
fn plan(env_file: &std::path::Path, trigger: bool) -> cutover_core::plan::Plan {
    plan_with(env_file, trigger, "")
}

/// As [`plan`], with `rollout` added to the `[rollout]` table (e.g. a hypercare).
fn plan_with(env_file: &std::path::Path, trigger: bool, rollout: &str) -> cutover_core::plan::Plan {
    let trigger = if trigger {
        "[[trigger]]\nid = \"slow\"\nexpr = \"p95(latency_ms) > 2s\"\nfor = \"1s\"\naction = \"step_back\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"
[rollout]
id = "back"
title = "Step back"
{rollout}

[rollback]
flags = {{ NEW_PATH = false, SHADOW = true }}

[[stage]]
id = "canary"
traffic = 10
flags = {{ NEW_PATH = true, MODE = "canary" }}
rollback_flags = {{ READONLY = true }}

[[stage]]
id = "beta"
traffic = 50
flags = {{ NEW_PATH = true, MODE = "beta" }}

[[stage]]
id = "ga"
traffic = 100
flags = {{ NEW_PATH = true, MODE = "ga" }}

[[metric]]
id = "latency_ms"
kind = "distribution"
unit = "ms"

{trigger}
[[actuator]]
id = "env"
kind = "env_file"
path = "{}"
"#,
        env_file.display()
    );
    cutover_core::plan::parse("back.toml", &text).unwrap()
}

async fn act(app: &TestApp, role: Role, action: &str, reason: Option<&str>) -> (u16, Value) {
    let path = cutover_core::route::ActionRoute::ALL
        .into_iter()
        .map(|r| r.path("back", &[]))
        .find(|p| p.ends_with(&format!("/{action}")))
        .unwrap();
    app.post(Some(role), &path, json!({ "reason": reason }))
        .await
}

fn flags(app_flags: &Value) -> Vec<String> {
    app_flags["flags"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

#[tokio::test]
async fn a_step_back_restores_the_previous_stage_and_a_kill_the_rollback_flags() {
    let data = tempfile::tempdir().unwrap();
    let env_file = data.path().join(".env.back");
    let app = TestApp::start(data.path(), vec![plan(&env_file, false)]).await;
    for action in ["start", "progress"] {
        let (status, body) = act(&app, Role::Operator, action, None).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    let at_beta = app.get("/api/rollouts/back/flags").await;
    assert_eq!(flags(&at_beta), ["MODE=\"beta\"", "NEW_PATH=true"]);
    assert_eq!(at_beta["traffic"], 50.0);

    // Refused without a reason, and for a viewer.
    let (status, _) = act(&app, Role::Operator, "step-back", None).await;
    assert_eq!(status, 422);
    let (status, _) = act(&app, Role::Viewer, "step-back", Some("no")).await;
    assert_eq!(status, 403);

    let (status, body) = act(&app, Role::Operator, "step-back", Some("recall dropped")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"]["phase"], "running");
    let at_canary = app.get("/api/rollouts/back/flags").await;
    assert_eq!(flags(&at_canary), ["MODE=\"canary\"", "NEW_PATH=true"]);
    assert_eq!(at_canary["traffic"], 10.0);
    let audit = app.get("/api/rollouts/back/audit").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"]["action"], "step_back");
    assert_eq!(entry["reason"], "recall dropped");
    assert_eq!(
        (&entry["before"]["stage"], &entry["after"]["stage"]),
        (&json!("beta"), &json!("canary"))
    );
    let marks = app.get("/api/rollouts/back/audit?marks=true").await;
    let labels: Vec<String> = marks["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| serde_json::from_value(e.clone()).ok())
        .filter_map(|e: cutover_core::audit::AuditEntry| cutover_core::chart::marker(&e.record))
        .map(|m| m.label)
        .collect();
    assert!(labels.contains(&"back to canary".to_string()), "{labels:?}");

    // Nothing before the first stage: a clear refusal that names the kill switch.
    let (status, body) = act(&app, Role::Operator, "step-back", Some("again")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first stage"),
        "{body}"
    );

    // A kill in canary publishes the plan's rollback flags with canary's own over them.
    let (status, body) = act(&app, Role::Operator, "kill", Some("errors")).await;
    assert_eq!(status, 200, "{body}");
    let killed = app.get("/api/rollouts/back/flags").await;
    assert_eq!(
        flags(&killed),
        ["NEW_PATH=false", "READONLY=true", "SHADOW=true"]
    );
    assert_eq!(
        (killed["traffic"].as_f64(), &killed["killed"]),
        (Some(0.0), &json!(true))
    );
    let version = killed["version"].as_u64().unwrap();
    let text = app
        .wait_for("/api/rollouts/back", "the env file at the kill", |_| {
            std::fs::read_to_string(&env_file)
                .ok()
                .filter(|t| t.contains(&format!("CUTOVER_VERSION={version}\n")))
        })
        .await;
    assert!(
        text.contains("NEW_PATH=false\nREADONLY=true\nSHADOW=true\n"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_step_back_trigger_retreats_once_per_episode() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan(&data.path().join(".env"), true)]).await;
    for action in ["start", "progress", "progress"] {
        let (status, body) = act(&app, Role::Operator, action, None).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    let slow = "{\"values\":{\"latency_ms\":3000}}\n".repeat(40);
    let push = || async {
        app.http
            .post(format!("{}/api/rollouts/back/events", app.url))
            .bearer_auth(app.token(Role::Ingest))
            .body(slow.clone())
            .send()
            .await
            .unwrap()
    };
    push().await;
    // A guard, not a claim (`for = "1s"`): room for a slow machine.
    let snapshot = app
        .wait_for_within(
            "/api/rollouts/back",
            "the trigger stepping back",
            Duration::from_secs(20),
            |s| (s["state"]["stage"] == 1).then(|| s.clone()),
        )
        .await;
    assert_eq!(snapshot["state"]["phase"], "running");
    assert_eq!(snapshot["traffic"], 50.0);
    // Still breaching for several more evaluations: the same episode retreats no further.
    push().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let snapshot = app.get("/api/rollouts/back").await;
    assert_eq!(
        snapshot["state"]["stage"], 1,
        "stepped back twice in one episode"
    );
    let audit = app.get("/api/rollouts/back/audit").await;
    let backs: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"]["action"] == "step_back")
        .collect();
    assert_eq!(backs.len(), 1, "{audit}");
    assert_eq!(backs[0]["actor"]["name"], "trigger slow");
    assert_eq!(backs[0]["actor"]["role"], "system");
    app.stop().await;
}

/// Through every stage into a 3 s hypercare.
async fn into_hypercare(app: &TestApp) {
    for action in ["start", "progress", "progress", "progress"] {
        let (status, body) = act(app, Role::Operator, action, None).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
}

#[tokio::test]
async fn hypercare_stays_live_and_armed_and_closes_once_its_watch_is_done() {
    let data = tempfile::tempdir().unwrap();
    let plan = plan_with(&data.path().join(".env"), false, "hypercare = \"3s\"");
    let app = TestApp::start(data.path(), vec![plan]).await;
    into_hypercare(&app).await;
    let snapshot = app.get("/api/rollouts/back").await;
    assert_eq!(snapshot["state"]["phase"], "hypercare");
    let live = app.get("/api/rollouts/back/flags").await;
    assert_eq!(flags(&live), ["MODE=\"ga\"", "NEW_PATH=true"]);
    assert_eq!(
        (live["traffic"].as_f64(), &live["killed"]),
        (Some(100.0), &json!(false))
    );
    let (status, body) = act(&app, Role::Operator, "close", None).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("hypercare has run"), "{message}");
    // Once the 3 s watch has run the close goes through (the deadline is a guard).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = act(&app, Role::Operator, "close", None).await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 409, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["state"]["phase"], "completed");
    let audit = app.get("/api/rollouts/back/audit").await;
    assert_eq!(audit["entries"][0]["action"]["action"], "close");
    app.stop().await;
}

#[tokio::test]
async fn a_trigger_still_acts_during_hypercare() {
    let data = tempfile::tempdir().unwrap();
    let plan = plan_with(&data.path().join(".env"), true, "hypercare = \"72h\"");
    let app = TestApp::start(data.path(), vec![plan]).await;
    into_hypercare(&app).await;
    let slow = "{\"values\":{\"latency_ms\":3000}}\n".repeat(40);
    let response = app
        .http
        .post(format!("{}/api/rollouts/back/events", app.url))
        .bearer_auth(app.token(Role::Ingest))
        .body(slow)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    // A guard, not a claim (`for = "1s"`): room for a slow machine.
    let snapshot = app
        .wait_for_within(
            "/api/rollouts/back",
            "the trigger stepping back out of hypercare",
            Duration::from_secs(20),
            |s| (s["state"]["phase"] == "running").then(|| s.clone()),
        )
        .await;
    assert_eq!(snapshot["state"]["stage"], 1);
    assert_eq!(snapshot["traffic"], 50.0);
    app.stop().await;
}
