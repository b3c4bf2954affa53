//! Decisions on the record: a lead records proceed / extend / investigate with a reason,
//! changing no state; every action keeps the evidence it was decided on (the gate values the
//! screen showed, the checklists); `cutover report` lists every decision in order with it.

use std::time::Duration;

use crate::support;

use cutover_core::role::Role;
use serde_json::{Value, json};
use support::{TestApp, spiralogic};

async fn report(app: &TestApp, format: &str) -> (i32, String) {
    report_of(app, "spiralogic", format).await
}

async fn report_of(app: &TestApp, rollout: &str, format: &str) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["report", rollout, "--format", format])
            .env("CUTOVER_SERVER", &app.url)
            .env("CUTOVER_TOKEN", &app.tokens[&Role::Viewer])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("cutover report hung")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Each gate's values as a person reads them on the board: (id, left value, threshold).
fn values(gates: &Value) -> Vec<(String, Value, Value)> {
    gates
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let c = &g["comparisons"][0];
            (
                g["id"].as_str().unwrap().to_string(),
                c["left_value"].clone(),
                c["right_value"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn decisions_keep_the_evidence_seen_and_the_report_lists_them_in_order() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![spiralogic()]).await;
    // Traffic, so the gates have values to keep.
    let body = "{\"values\":{\"latency_ms\":120}}\n{\"values\":{\"latency_ms\":480}}\n".repeat(20);
    let pushed = app
        .http
        .post(format!("{}/api/rollouts/spiralogic/events", app.url))
        .bearer_auth(&app.tokens[&Role::Ingest])
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    // What the lead's screen shows once the evaluator has judged those events.
    let seen = app
        .wait_for("/api/rollouts/spiralogic", "gates judged", |s| {
            let has = values(&s["gates"])
                .iter()
                .any(|(id, v, _)| id == "p95-latency" && v.is_number());
            has.then(|| s.clone())
        })
        .await;
    let version = seen["state"]["version"].as_u64().unwrap();

    let decide =
        |role: Role, body: Value| app.post(Some(role), "/api/rollouts/spiralogic/decisions", body);
    let (status, refused) = decide(
        Role::Operator,
        json!({"decision": "proceed", "reason": "looks fine"}),
    )
    .await;
    assert_eq!(status, 403, "a lead's call: {refused}");
    let (status, _) = decide(Role::Lead, json!({"decision": "proceed"})).await;
    assert_eq!(status, 422, "a decision needs its reason");
    let (status, _) = decide(Role::Lead, json!({"decision": "ship it", "reason": "x"})).await;
    assert_eq!(status, 400, "only proceed, extend or investigate");
    for (decision, reason) in [
        ("investigate", "p95 jumped at 14:02; checking the batch job"),
        ("extend", "hold the canary 30m more"),
        ("proceed", "batch job confirmed; numbers steady"),
    ] {
        let (status, after) =
            decide(Role::Lead, json!({"decision": decision, "reason": reason})).await;
        assert_eq!(status, 200, "{after}");
        // Recorded, and nothing else changed.
        assert_eq!(after["state"]["phase"], "not_started");
    }

    let page = app.get("/api/rollouts/spiralogic/audit").await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "one entry per decision: {page}");
    let newest = &entries[0];
    assert_eq!(
        newest["action"],
        json!({"action": "decide", "decision": "proceed"})
    );
    assert_eq!(newest["actor"]["role"], "lead");
    // The evidence kept is what the screen showed: the same gates with the same values
    // against the same thresholds (the same events in the same windows).
    assert_eq!(values(&newest["evidence"]["gates"]), values(&seen["gates"]));
    // With the samples behind each verdict: the 40 latencies pushed, none for the others.
    let samples = |id: &str| {
        newest["evidence"]["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .map(|g| g["samples"].clone())
    };
    assert_eq!(samples("p95-latency"), Some(json!(40)));
    assert_eq!(samples("error-rate"), Some(json!(0)));
    let lists = newest["evidence"]["checklists"].as_object().unwrap();
    assert!(
        lists
            .values()
            .all(|l| l["open"].is_array() && l["done"].is_array()),
        "{lists:?}"
    );
    let now = app.get("/api/rollouts/spiralogic").await;
    assert_eq!(now["state"]["version"].as_u64().unwrap(), version + 3);

    let (code, md) = report(&app, "md").await;
    assert_eq!(code, 0, "{md}");
    assert!(md.starts_with("# Launch report: "), "{md}");
    let at = |text: &str| {
        md.find(text)
            .unwrap_or_else(|| panic!("{text:?} missing from\n{md}"))
    };
    let decisions = at("## Decisions and their evidence");
    let (investigate, extend, proceed) = (
        at("decide: investigate by test-lead (lead)"),
        at("decide: extend by test-lead (lead)"),
        at("decide: proceed by test-lead (lead)"),
    );
    assert!(
        decisions < investigate && investigate < extend && extend < proceed,
        "decisions in the order taken:\n{md}"
    );
    assert!(
        md.contains("Reason: batch job confirmed; numbers steady"),
        "{md}"
    );
    assert!(md.contains("| p95-latency | p95(latency_ms) = "), "{md}");
    assert!(md.contains(", 40 samples |"), "{md}");
    assert!(md.contains("## Final gate values"), "{md}");

    let (code, text) = report(&app, "json").await;
    assert_eq!(code, 0, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    let actions: Vec<&str> = json["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["decide: investigate", "decide: extend", "decide: proceed"]
    );
    assert_eq!(
        values(&json["decisions"][2]["evidence"]["gates"]),
        values(&seen["gates"])
    );
    app.stop().await;
}

/// A plan with one trigger that fires, one breaching on its way to a kill, and one quiet.
fn three_triggers() -> cutover_core::plan::Plan {
    let text = crate::fixtures::two_stage_plan(
        "trio",
        "Trio",
        r#"
[[trigger]]
id = "loud"
expr = "p95(latency_ms) > 100ms"
for = "0s"
action = "alert"

[[trigger]]
id = "creeping"
expr = "p95(latency_ms) > 200ms"
for = "1h"
action = "kill"

[[trigger]]
id = "calm"
expr = "p95(latency_ms) > 10s"
for = "0s"
action = "kill"
"#,
    );
    cutover_core::plan::parse("trio.toml", &text).unwrap()
}

/// The report's triggers are the page's: the fired and breaching ones under "breaching",
/// the quiet one never (it once listed every quiet trigger as breaching, because it read a
/// trigger's `"fail"` verdict, its condition being false, as a breach).
#[tokio::test]
async fn the_report_names_the_triggers_the_page_shows_breaching() {
    use cutover_core::snapshot::Snapshot;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![three_triggers()]).await;
    let (status, body) = app
        .post(Some(Role::Operator), "/api/rollouts/trio/start", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let pushed = app
        .http
        .post(format!("{}/api/rollouts/trio/events", app.url))
        .bearer_auth(&app.tokens[&Role::Ingest])
        .body("{\"values\":{\"latency_ms\":480}}\n".repeat(20))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    let seen: Snapshot = app
        .wait_for(
            "/api/rollouts/trio",
            "loud fired, creeping breaching",
            |s| {
                let s: Snapshot = serde_json::from_value(s.clone()).ok()?;
                let word = |id: &str| s.triggers.iter().find(|t| t.id == id).map(|t| t.word());
                (word("loud") == Some("FIRED") && word("creeping") == Some("BREACHING"))
                    .then_some(s)
            },
        )
        .await;
    let on_page: Vec<&str> = seen
        .triggers
        .iter()
        .filter(|t| t.alarming())
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(on_page, ["loud", "creeping"]);
    let (status, after) = app
        .post(
            Some(Role::Lead),
            "/api/rollouts/trio/decisions",
            json!({"decision": "investigate", "reason": "p95 at 480ms"}),
        )
        .await;
    assert_eq!(status, 200, "{after}");

    let (code, md) = report_of(&app, "trio", "md").await;
    assert_eq!(code, 0, "{md}");
    let decision = &md[md.find("decide: investigate").expect("the decision")..];
    assert!(
        decision.contains("Triggers breaching: loud (fired), creeping (breaching)\n"),
        "{md}"
    );
    assert!(
        decision.contains("Triggers not breaching: calm (quiet)\n"),
        "{md}"
    );
    let (code, text) = report_of(&app, "trio", "json").await;
    assert_eq!(code, 0, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    let last = json["decisions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["triggers_breaching"], json!(on_page), "{last}");
    app.stop().await;
}

/// A kill pressed by hand is open until someone says they have it; the acknowledgement says
/// what it turned out to be (here from the CLI), and the report counts the outcomes.
#[tokio::test]
async fn an_acknowledgement_says_what_the_alert_was_and_the_report_counts_it() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![support::open_plan("acked", 2)]).await;
    for action in ["start", "kill"] {
        let (status, body) = app
            .post(
                Some(Role::Lead),
                &format!("/api/rollouts/acked/{action}"),
                json!({ "reason": "the canary is on fire" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let state = app.get("/api/rollouts/acked").await;
    assert_eq!(
        state["state"]["open_alerts"]["kill"]["kind"], "kill",
        "{state}"
    );
    // From the terminal, with an outcome.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "ack",
            "acked",
            "kill",
            "--outcome",
            "false-positive",
            "--reason",
            "a load test",
        ])
        .env("CUTOVER_SERVER", &app.url)
        .env("CUTOVER_TOKEN", &app.tokens[&Role::Operator])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (code, markdown) = report_of(&app, "acked", "md").await;
    assert_eq!(code, 0);
    assert!(
        markdown.contains("acknowledged by test-operator (operator) after")
            && markdown.contains(": false positive)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("Acknowledged as: 0 real, 1 false positive, 0 expected, 0 not said."),
        "{markdown}"
    );
    let (_, json_text) = report_of(&app, "acked", "json").await;
    let report: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(report["alert_outcomes"]["false_positive"], 1);
    assert_eq!(
        report["alerts"][0]["acknowledged"]["outcome"],
        "false_positive"
    );
    // An outcome the API does not know is a clear 400.
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/acked/alerts/kill/ack",
            json!({ "outcome": "maybe" }),
        )
        .await;
    assert_eq!(status, 400);
}
