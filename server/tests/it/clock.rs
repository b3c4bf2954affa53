//! The clock of a launch: T-0 scheduled ahead (bounded, role-guarded, kept by the start), and
//! a stage past its timebox said once and acted on once.

use std::time::Duration;

use cutover_core::role::Role;
use serde_json::{Value, json};

use crate::support::TestApp;

fn plan() -> cutover_core::plan::Plan {
    let text = r#"
[rollout]
id = "clocked"
title = "Clocked"

[[stage]]
id = "canary"
traffic = 10

[[stage]]
id = "beta"
traffic = 50
max_duration = "2s"
on_max_duration = "step_back"

[[metric]]
id = "latency_ms"
kind = "distribution"

[[checklist]]
id = "pre"
title = "Before"
phase = "T-30m"
items = [{ id = "backup", text = "Backup taken" }]
"#;
    cutover_core::plan::parse("clocked.toml", text).unwrap()
}

fn path(action: &str) -> String {
    format!("/api/rollouts/clocked/{action}")
}

fn actions(audit: &Value, name: &str) -> Vec<Value> {
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"]["action"] == name)
        .cloned()
        .collect()
}

#[tokio::test]
async fn t0_is_scheduled_within_bounds_and_kept_by_the_start() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let now = cutover_core::time::Millis::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let (status, body) = app
        .post(Some(Role::Operator), &path("schedule"), json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    let far = now + 400 * cutover_core::time::DAY;
    let (status, body) = app
        .post(
            Some(Role::Operator),
            &path("schedule"),
            json!({ "t0": far }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let t0 = now + cutover_core::time::HOUR;
    let (status, _) = app
        .post(Some(Role::Viewer), &path("schedule"), json!({ "t0": t0 }))
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .post(Some(Role::Operator), &path("schedule"), json!({ "t0": t0 }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"]["t0"], t0);
    let (status, body) = app
        .post(Some(Role::Operator), &path("start"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"]["t0"], t0, "a start keeps the scheduled T-0");
    let (status, _) = app
        .post(
            Some(Role::Operator),
            &path("schedule"),
            json!({ "t0": now }),
        )
        .await;
    assert_eq!(status, 409, "T-0 is fixed once started");
    app.stop().await;
}

#[tokio::test]
async fn a_timebox_is_recorded_once_and_its_step_back_taken_once() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    for action in ["start", "progress"] {
        let (status, body) = app
            .post(Some(Role::Operator), &path(action), json!({}))
            .await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    // A guard, not a claim (the timebox is 2 s): room for a slow machine.
    app.wait_for_within(
        "/api/rollouts/clocked",
        "the timebox stepping back",
        Duration::from_secs(20),
        |s| (s["state"]["stage"] == 0).then_some(()),
    )
    .await;
    // Canary has no timebox: nothing more happens however long it runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let audit = app.get("/api/rollouts/clocked/audit").await;
    let timeboxes = actions(&audit, "timebox");
    assert_eq!(timeboxes.len(), 1, "{audit}");
    assert!(
        timeboxes[0]["reason"]
            .as_str()
            .unwrap()
            .contains("past its max_duration 2s"),
        "{audit}"
    );
    let back = actions(&audit, "step_back");
    assert_eq!(back.len(), 1, "{audit}");
    assert_eq!(back[0]["actor"]["name"], "timebox of beta");
    app.stop().await;
}
