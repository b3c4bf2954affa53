//! Tuning inside a stage: an operator sets an `[[adjust]]` flag with a reason (the API and
//! `cutover adjust`), services read it at once from `/flags` and OFREP, the record says who
//! and why, bounds and roles are enforced, and the next stage or a kill undoes it.

use std::time::Duration;

use crate::support::TestApp;

use cutover_core::plan::Plan;
use cutover_core::role::Role;
use serde_json::{Value, json};

fn plan() -> Plan {
    let text = r#"
[rollout]
id = "hal"
title = "HAL shadow"

[rollback]
flags = { shadow_mode = false }

[[stage]]
id = "shadow"
traffic = 100
shadow = true
flags = { shadow_mode = true, shadow_percentage = 100 }

[[stage]]
id = "canary"
traffic = 100
flags = { shadow_mode = false, shadow_percentage = 0 }

[[metric]]
id = "reads"
kind = "counter"

[[adjust]]
flag = "shadow_percentage"
title = "Shadow sampling (%)"
min = 0
max = 100
stages = ["shadow"]
"#;
    cutover_core::plan::parse("hal.toml", text).unwrap()
}

async fn flags(app: &TestApp) -> Value {
    let response = app
        .get_as(Some(Role::Flags), "/api/rollouts/hal/flags")
        .await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["flags"].clone()
}

async fn ofrep(app: &TestApp) -> Value {
    let response = app
        .http
        .post(format!(
            "{}/ofrep/v1/evaluate/flags/shadow_percentage",
            app.url
        ))
        .bearer_auth(app.token(Role::Flags))
        .json(&json!({ "context": { "targetingKey": "u1" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn cli(app: &TestApp, role: Role, args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .env("CUTOVER_SERVER", &app.url)
            .env("CUTOVER_TOKEN", app.token(role))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("cutover hung")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn an_adjustment_is_published_at_once_recorded_bounded_and_undone() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let path = "/api/rollouts/hal/adjustments/shadow_percentage";
    // Before the start there is no stage to tune.
    let (status, body) = app
        .post(
            Some(Role::Operator),
            path,
            json!({"value": 50, "reason": "x"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = app
        .post(Some(Role::Lead), "/api/rollouts/hal/start", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(flags(&app).await["shadow_percentage"].as_f64(), Some(100.0));

    // What is refused, and why, before anything changes.
    for (role, body, want, says) in [
        (Role::Operator, json!({"reason": "x"}), 400, "value"),
        (Role::Operator, json!({"value": 50}), 422, "needs a reason"),
        (
            Role::Operator,
            json!({"value": 150, "reason": "x"}),
            422,
            "within 0 to 100",
        ),
        (
            Role::Operator,
            json!({"value": "half", "reason": "x"}),
            422,
            "same kind",
        ),
        (
            Role::Product,
            json!({"value": 50, "reason": "x"}),
            403,
            "may not adjust",
        ),
        (Role::Viewer, json!({"value": 50, "reason": "x"}), 403, ""),
    ] {
        let (status, answer) = app.post(Some(role), path, body.clone()).await;
        assert_eq!(status, want, "{role:?} {body}: {answer}");
        assert!(answer.to_string().contains(says), "{body}: {answer}");
    }
    let (status, answer) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/hal/adjustments/shadow_mode",
            json!({"value": false, "reason": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(flags(&app).await["shadow_percentage"].as_f64(), Some(100.0));

    // The runbook's "--shadow-sampling 50", through the CLI.
    let (code, out) = cli(
        &app,
        Role::Operator,
        &[
            "adjust",
            "hal",
            "shadow_percentage",
            "50",
            "--reason",
            "shadow pods at 90% CPU",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("set shadow_percentage to 50"), "{out}");
    // Published at once: the answer came after the commit, and readers see it now.
    assert_eq!(flags(&app).await["shadow_percentage"].as_f64(), Some(50.0));
    let evaluated = ofrep(&app).await;
    assert_eq!(evaluated["value"].as_f64(), Some(50.0), "{evaluated}");
    let snapshot = app.get("/api/rollouts/hal").await;
    let adjusted = &snapshot["state"]["adjusted"]["shadow_percentage"];
    assert_eq!(adjusted["by"]["reason"], "shadow pods at 90% CPU");
    assert_eq!(adjusted["by"]["by"]["role"], "operator");
    let (code, status) = cli(&app, Role::Viewer, &["status", "hal"]).await;
    assert_eq!(code, 0);
    assert!(
        status.contains("shadow_percentage=50 (adjusted by "),
        "{status}"
    );
    let audit = app.get("/api/rollouts/hal/audit").await;
    let record = audit["entries"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["action"]["action"] == "adjust"))
        .cloned()
        .unwrap_or_else(|| panic!("no adjust record in {audit}"));
    assert_eq!(record["action"]["value"].as_f64(), Some(50.0));

    // The next stage publishes its own value, and there the plan allows no tuning.
    let (status, _) = app
        .post(Some(Role::Lead), "/api/rollouts/hal/progress", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(flags(&app).await["shadow_percentage"].as_f64(), Some(0.0));
    let (status, body) = app
        .post(
            Some(Role::Operator),
            path,
            json!({"value": 50, "reason": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    // Back in shadow (a step back) and tuned again: a kill publishes the rollback, and a
    // resume returns to the stage's own value, not the tuning.
    let (status, _) = app
        .post(
            Some(Role::Lead),
            "/api/rollouts/hal/step-back",
            json!({"reason": "back"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .post(
            Some(Role::Lead),
            path,
            json!({"value": 25, "reason": "less"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(flags(&app).await["shadow_percentage"].as_f64(), Some(25.0));
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/hal/kill",
            json!({"reason": "stop"}),
        )
        .await;
    assert_eq!(status, 200);
    let killed = flags(&app).await;
    assert_eq!(killed, json!({"shadow_mode": false}));
    let (status, _) = app
        .post(
            Some(Role::Lead),
            "/api/rollouts/hal/resume",
            json!({"reason": "fixed"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(flags(&app).await["shadow_percentage"].as_f64(), Some(100.0));
}
