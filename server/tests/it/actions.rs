//! Actions over HTTP: who may do what (401 vs 403, per the plan's permissions), what the state
//! machine refuses (409 with the reason), kill winning races, durability across a restart,
//! idempotent retries, the audit log and the flags services poll.

use crate::support;

use cutover_core::role::Role;
use serde_json::{Value, json};
use support::{TestApp, open_plan, spiralogic};

const MUTATING: [(&str, &str); 8] = [
    ("start", "/api/rollouts/spiralogic/start"),
    ("progress", "/api/rollouts/spiralogic/progress"),
    ("pause", "/api/rollouts/spiralogic/pause"),
    ("resume", "/api/rollouts/spiralogic/resume"),
    ("kill", "/api/rollouts/spiralogic/kill"),
    (
        "override",
        "/api/rollouts/spiralogic/gates/p95-latency/override",
    ),
    (
        "check",
        "/api/rollouts/spiralogic/checklists/launch-day/items/briefed",
    ),
    ("approve", "/api/rollouts/spiralogic/approvals"),
];

/// Roles spiralogic.toml's [permissions] grants each action.
fn allowed(action: &str) -> &'static [Role] {
    use Role::*;
    match action {
        "start" | "progress" | "pause" => &[Operator, Lead],
        "resume" | "override" => &[Lead],
        "kill" => &[Operator, Product, Lead],
        "check" => &[Operator, Lead],
        "approve" => &[Product, Lead],
        _ => &[],
    }
}

#[tokio::test]
async fn role_matrix_every_mutating_endpoint_by_every_role() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![spiralogic()]).await;
    let body = json!({ "reason": "matrix" });
    for (action, path) in MUTATING {
        let (status, _) = app.post(None, path, body.clone()).await;
        assert_eq!(status, 401, "{action} without a token");
        for role in Role::ALL {
            let (status, error) = app.post(Some(role), path, body.clone()).await;
            if allowed(action).contains(&role) {
                assert!(
                    ![401, 403].contains(&status),
                    "{action} as {role}: {status} {error}"
                );
            } else {
                assert_eq!(status, 403, "{action} as {role}: {error}");
                assert_eq!(error["error"]["code"], "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn refusals_are_409_with_the_reason_and_the_audit_keeps_every_accepted_action() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![spiralogic()]).await;
    let (status, error) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/start",
            json!({}),
        )
        .await;
    assert_eq!(status, 409);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("not ready to enter canary: checklist preflight has 7 open item(s)"),
        "{message}"
    );

    let (status, error) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/kill",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["message"].as_str()),
        (422, Some("kill needs a reason"))
    );

    let (status, snapshot) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/checklists/preflight/items/migration",
            json!({"note": "applied 09:12"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        snapshot["state"]["checked"]["preflight/migration"]["by"]["name"],
        "test-operator"
    );
    let (status, _) = app
        .post(
            Some(Role::Product),
            "/api/rollouts/spiralogic/kill",
            json!({"reason": "abort"}),
        )
        .await;
    assert_eq!(status, 200);
    let audit = app.get("/api/rollouts/spiralogic/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"]["action"], "kill");
    assert_eq!(entries[0]["actor"]["role"], "product");
    assert_eq!(entries[0]["reason"], "abort");
    assert_eq!(entries[0]["after"]["phase"], "killed");
    assert_eq!(entries[1]["reason"], "applied 09:12");
    assert!(entries[0]["evidence"].is_object());
}

#[tokio::test]
async fn kill_wins_every_race_with_progress() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("race", 250)]).await;
    let (status, _) = app
        .post(Some(Role::Operator), "/api/rollouts/race/start", json!({}))
        .await;
    assert_eq!(status, 200);
    let mut accepted = 1;
    for round in 0..120 {
        let kill = app.post(
            Some(Role::Operator),
            "/api/rollouts/race/kill",
            json!({"reason": "race"}),
        );
        let progress = app.post(
            Some(Role::Operator),
            "/api/rollouts/race/progress",
            json!({}),
        );
        let ((k, _), (p, _)) = tokio::join!(kill, progress);
        assert_eq!(k, 200, "round {round}: kill must always be applied");
        assert!(p == 200 || p == 409, "round {round}: progress answered {p}");
        accepted += 1 + usize::from(p == 200);
        let snapshot = app.get("/api/rollouts/race").await;
        assert_eq!(snapshot["state"]["phase"], "killed", "round {round}");
        assert_eq!(snapshot["traffic"], 0.0);
        let (r, _) = app
            .post(
                Some(Role::Lead),
                "/api/rollouts/race/resume",
                json!({"reason": "again"}),
            )
            .await;
        assert_eq!(r, 200);
        accepted += 1;
    }
    let audit = app.get("/api/rollouts/race/audit?limit=500").await;
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        accepted,
        "one audit record per accepted action"
    );
}

#[tokio::test]
async fn a_kill_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("durable", 3)]).await;
    app.post(
        Some(Role::Operator),
        "/api/rollouts/durable/start",
        json!({}),
    )
    .await;
    app.post(
        Some(Role::Operator),
        "/api/rollouts/durable/progress",
        json!({}),
    )
    .await;
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/durable/kill",
            json!({"reason": "error spike"}),
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;

    let app = TestApp::start(data.path(), vec![open_plan("durable", 3)]).await;
    let snapshot = app.get("/api/rollouts/durable").await;
    assert_eq!(snapshot["state"]["phase"], "killed");
    assert_eq!(snapshot["state"]["killed"]["reason"], "error spike");
    assert_eq!(snapshot["state"]["stage"], 1);
    assert_eq!(snapshot["traffic"], 0.0);
    let audit = app.get("/api/rollouts/durable/audit").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_retried_request_with_the_same_idempotency_key_acts_once() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("retry", 3)]).await;
    app.post(Some(Role::Operator), "/api/rollouts/retry/start", json!({}))
        .await;
    let send = || {
        app.http
            .post(format!("{}/api/rollouts/retry/progress", app.url))
            .bearer_auth(app.token(Role::Operator))
            .header("Idempotency-Key", "deploy-42")
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status().as_u16(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        app.get("/api/rollouts/retry").await["state"]["stage"],
        1,
        "progressed once"
    );
    let audit = app.get("/api/rollouts/retry/audit").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn services_poll_flags_with_an_etag_and_see_the_kill() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![spiralogic(), open_plan("flags", 2)]).await;
    let url = format!("{}/api/rollouts/flags/flags", app.url);
    let poll = || app.http.get(&url).bearer_auth(app.token(Role::Ingest));
    let first = poll().send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        (body["phase"].as_str(), body["traffic"].as_f64()),
        (Some("not_started"), Some(0.0))
    );
    let again = poll().header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 304);

    app.post(Some(Role::Operator), "/api/rollouts/flags/start", json!({}))
        .await;
    let running: Value = poll().send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (running["stage"].as_str(), running["traffic"].as_f64()),
        (Some("s0"), Some(50.0))
    );
    app.post(
        Some(Role::Operator),
        "/api/rollouts/flags/kill",
        json!({"reason": "x"}),
    )
    .await;
    let killed = poll().header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(killed.status().as_u16(), 200);
    let killed: Value = killed.json().await.unwrap();
    assert_eq!(
        (killed["killed"].as_bool(), killed["traffic"].as_f64()),
        (Some(true), Some(0.0))
    );
}
