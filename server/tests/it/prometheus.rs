//! Prometheus both ways, against a real Prometheus server the test starts: a plan whose metrics
//! and gates come from PromQL shows Prometheus's values on its charts and gate board, turns a
//! gate red when the value does, and says "no data" with the error once Prometheus is gone;
//! and cutover's own `/metrics` passes `promtool check metrics`.

use std::time::Duration;

use crate::prom;
use crate::support;

use cutover_core::role::Role;
use cutover_server::sources::prometheus::PromConfig;
use cutover_server::store::Storage;
use prom::{Exporter, Prometheus};
use serde_json::Value;
use support::TestApp;

const PLAN: &str = r#"
[rollout]
id = "prom"
title = "Prometheus-backed rollout"

[[stage]]
id = "canary"
traffic = 5

[[stage]]
id = "ga"
traffic = 100

[[metric]]
id = "error_ratio"
title = "error ratio"
kind = "gauge"
source = "prometheus"
query = "fixture_error_ratio"

[[metric]]
id = "active_contexts"
title = "active contexts"
kind = "gauge"
source = "prometheus"
query = "sum(fixture_active_contexts)"

[[metric]]
id = "pods_ready"
title = "pods ready"
kind = "gauge"
source = "prometheus"
query = "fixture_pod_ready"

[[gate]]
id = "pods"
expr = 'last(pods_ready) >= 1'
window = "10s"
hold = "10s"
stages = ["canary"]

[[gate]]
id = "canary-errors"
expr = 'last(error_ratio{variant="canary"}) < 5%'
window = "10s"
hold = "10s"
stages = ["canary"]

[[gate]]
id = "alert-query"
expr = 'promql("max(fixture_error_ratio)") < 0.05'
window = "10s"
hold = "10s"
stages = ["canary"]
"#;

/// The gate's verdict, its left-hand value and its no-data reason ("" before the first
/// evaluation).
fn reading(snapshot: &Value, id: &str) -> (String, Option<f64>, String) {
    let Some(g) = snapshot["gates"]
        .as_array()
        .and_then(|gates| gates.iter().find(|g| g["id"] == id))
    else {
        return (String::new(), None, String::new());
    };
    (
        g["verdict"].as_str().unwrap_or_default().to_string(),
        g["comparisons"][0]["left_value"].as_f64(),
        g["reason"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_drive_charts_and_gates_and_its_absence_is_no_data() {
    let exporter = Exporter::default();
    exporter.set("fixture_error_ratio{variant=\"canary\"}", 0.02);
    exporter.set("fixture_error_ratio{variant=\"baseline\"}", 0.01);
    exporter.set("fixture_active_contexts{shard=\"a\"}", 2.0);
    exporter.set("fixture_active_contexts{shard=\"b\"}", 1.0);
    // More series than cutover keeps for one metric: a gate over them must say so, not judge
    // whichever 64 arrived first.
    for pod in 0..70 {
        exporter.set(&format!("fixture_pod_ready{{pod=\"p{pod}\"}}"), 1.0);
    }
    let target = exporter.serve().await;
    let mut prometheus = Prometheus::start(&[target]).await;
    prometheus.wait_for_data("fixture_active_contexts").await;
    // Let Prometheus hold history from before cutover starts, reaching into an earlier 10 s
    // chart bucket than the one cutover starts in.
    let first = cutover_server::clock::now() + 2_000;
    let next_bucket = first - first.rem_euclid(10_000) + 10_000;
    let wait = next_bucket + 1_500 - cutover_server::clock::now();
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap())).await;
    let started = cutover_server::clock::now();

    let plan = cutover_core::plan::parse("prom.toml", PLAN).unwrap();
    let data = tempfile::tempdir().unwrap();
    let storage = Storage::open_sqlite(data.path()).await.unwrap();
    let config = PromConfig::from_env(&prometheus.url, Duration::from_secs(1));
    let app = TestApp::start_on(storage, vec![plan], Some(config)).await;

    // Both gates read Prometheus's values and pass.
    app.wait_for("/api/rollouts/prom", "the gates reading 0.02", |s| {
        let errors = reading(s, "canary-errors");
        let alert = reading(s, "alert-query");
        (errors == ("pass".into(), Some(0.02), String::new())
            && alert == ("pass".into(), Some(0.02), String::new()))
            .then_some(())
    })
    .await;

    let (verdict, _, reason) = app
        .wait_for("/api/rollouts/prom", "the 70-series gate to say why", |s| {
            let pods = reading(s, "pods");
            (pods.0 == "no_data" && pods.2.contains("series")).then_some(pods)
        })
        .await;
    assert_eq!(verdict, "no_data");
    assert!(
        reason.contains("returned 70 series, more than the 64 cutover keeps per metric"),
        "{reason}"
    );

    // The chart has the summed gauge, including history from before cutover started.
    let snapshot = app.get("/api/rollouts/prom?series=15m&step=10s").await;
    let series = snapshot["frame"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "active_contexts.last")
        .unwrap_or_else(|| panic!("no active_contexts series: {snapshot}"));
    let points: Vec<(i64, f64)> = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["t"].as_i64()?, p["v"].as_f64()?)))
        .collect();
    assert!(
        points.iter().all(|(_, v)| *v == 3.0) && !points.is_empty(),
        "{points:?}"
    );
    assert!(
        points.iter().any(|(t, _)| *t + 10_000 <= started),
        "history before the start, from query_range: {points:?} (started {started})"
    );

    // The canary's error ratio climbs: both gates fail with the new value.
    exporter.set("fixture_error_ratio{variant=\"canary\"}", 0.2);
    app.wait_for("/api/rollouts/prom", "the gates failing on 0.2", |s| {
        let errors = reading(s, "canary-errors");
        let alert = reading(s, "alert-query");
        (errors.0 == "fail" && errors.1 == Some(0.2) && alert.0 == "fail").then_some(())
    })
    .await;
    exporter.set("fixture_error_ratio{variant=\"canary\"}", 0.02);
    app.wait_for("/api/rollouts/prom", "the gates passing again", |s| {
        (reading(s, "canary-errors").0 == "pass" && reading(s, "alert-query").0 == "pass")
            .then_some(())
    })
    .await;

    // Prometheus goes away: no data, with the reason, although the window still holds
    // passing samples from a moment ago.
    prometheus.stop();
    let (errors, alert) = app
        .wait_for(
            "/api/rollouts/prom",
            "no data once Prometheus is gone",
            |s| {
                let errors = reading(s, "canary-errors");
                let alert = reading(s, "alert-query");
                (errors.0 == "no_data" && alert.0 == "no_data").then_some((errors, alert))
            },
        )
        .await;
    assert!(
        errors
            .2
            .contains("error_ratio: cannot reach Prometheus at http://127.0.0.1:"),
        "{errors:?}"
    );
    assert!(
        alert.2.contains("promql: cannot reach Prometheus"),
        "{alert:?}"
    );
    // And no data never lets a rollout progress.
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/prom/start",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/prom/progress",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("canary-errors"), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_prometheus_its_gates_say_so() {
    let plan = cutover_core::plan::parse("prom.toml", PLAN).unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    let reason = app
        .wait_for("/api/rollouts/prom", "the gates saying why", |s| {
            let (verdict, _, reason) = reading(s, "canary-errors");
            (verdict == "no_data" && reason.contains("--prometheus")).then_some(reason)
        })
        .await;
    assert!(reason.contains("no Prometheus configured"), "{reason}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_metrics_pass_promtool() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![support::spiralogic()]).await;
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/kill",
            serde_json::json!({"reason": "so killed reads 1"}),
        )
        .await;
    assert!(status == 200 || status == 409);
    // Wait for an evaluation so gate series are present.
    app.wait_for("/api/rollouts/spiralogic", "gates evaluated", |s| {
        (!s["gates"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let body = app
        .http
        .get(format!("{}/metrics", app.url))
        .bearer_auth(app.token(Role::Viewer))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("cutover_gate_passing{rollout=\"spiralogic\""),
        "{body}"
    );
    let mut child = std::process::Command::new(
        std::env::var("CUTOVER_PROMTOOL_BIN").unwrap_or("promtool".into()),
    )
    .args(["check", "metrics"])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("cannot run promtool (Debian's `prometheus` package; ./x test installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}
