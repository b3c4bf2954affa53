//! The client commands of the real `cutover` binary against a real server on a loopback port:
//! what an on-call engineer sees in a terminal and what a CI job's exit code says.

use crate::fixtures;
use crate::support;

use std::time::Duration;

use cutover_core::role::Role;
use serde_json::{Value, json};
use support::TestApp;

fn plan_text() -> String {
    fixtures::two_stage_plan(
        "cli",
        "CLI test",
        r#"
[[metric]]
id = "error"
kind = "ratio"

[[metric]]
id = "mode"
kind = "category"
values = ["full", "lite", "fallback"]

[[metric]]
id = "cache_hit"
kind = "ratio"

[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 700ms"
window = "10s"
hold = "10s"
stages = ["canary"]

[[gate]]
id = "errors"
expr = "rate(error) <= 5%"
window = "10s"
hold = "10s"

[[gate]]
id = "fallback"
expr = "share(mode, \"fallback\") <= 20%"
window = "10s"
hold = "10s"

[[gate]]
id = "cache"
expr = "rate(cache_hit) >= 30%"
window = "10s"
hold = "10s"

[[checklist]]
id = "launch"
title = "Launch"
items = [{ id = "backups", text = "Backups taken" }]

[[signoff]]
stage = "ga"
approvals = 1
roles = ["lead"]
"#,
    )
}

fn plan() -> cutover_core::plan::Plan {
    cutover_core::plan::parse("cli.toml", &plan_text()).unwrap()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cutover ARGS` against `url` with `token`; no colour, no inherited settings.
async fn cutover_at(url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
    command
        .args(args)
        .env("CUTOVER_SERVER", url)
        .env_remove("CUTOVER_TOKEN")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("CUTOVER_TOKEN", token);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("cutover hung")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn cutover(app: &TestApp, role: Role, args: &[&str]) -> Run {
    cutover_at(&app.url, Some(app.token(role)), args).await
}

/// Healthy events at server time: latency `ms`, no errors, full mode, cache hits.
async fn push(app: &TestApp, ms: f64, n: usize) {
    let event =
        json!({"values": {"latency_ms": ms, "error": false, "mode": "full", "cache_hit": true}});
    let body = format!("{event}\n").repeat(n);
    let response = app
        .http
        .post(format!("{}/api/rollouts/cli/events", app.url))
        .bearer_auth(app.token(Role::Ingest))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

async fn started() -> (TestApp, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let (status, body) = app
        .post(Some(Role::Operator), "/api/rollouts/cli/start", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    (app, data)
}

async fn wait_for_evaluation(app: &TestApp, gate: &str, verdict: &str) -> Value {
    let what = format!("gate {gate} {verdict}");
    app.wait_for("/api/rollouts/cli", &what, |snapshot| {
        let found = snapshot["gates"]
            .as_array()?
            .iter()
            .any(|g| g["id"] == gate && g["verdict"] == verdict);
        found.then(|| snapshot.clone())
    })
    .await
}

#[tokio::test]
async fn compact_status_is_one_line_with_stage_traffic_health_gates_and_numbers() {
    let (app, _data) = started().await;
    push(&app, 300.0, 50).await;
    wait_for_evaluation(&app, "p95", "pass").await;
    let run = cutover(&app, Role::Viewer, &["status", "--compact", "--once"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    let line = lines[0];
    assert!(
        line.starts_with("cli canary 10% HEALTHY gates 4/4 p95="),
        "{line}"
    );
    // 50 events of 300 ms: the p95 is 300 ms within the sketch's 1%.
    let p95: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("p95="))
        .and_then(|v| v.strip_suffix("ms"))
        .unwrap()
        .parse()
        .unwrap();
    assert!((297.0..=303.0).contains(&p95), "{line}");
    assert!(line.contains(" error=0%"), "{line}");
    assert!(line.contains(" cache_hit=100%"), "{line}");
    assert!(line.contains(" fallback=0%"), "{line}");
    assert!(!line.contains('\x1b'), "no colour when not a terminal");

    let json = cutover(&app, Role::Viewer, &["status", "--compact", "--json"]).await;
    let summaries: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(summaries[0]["id"], "cli");
    assert_eq!(summaries[0]["gates_passing"], 4);
    app.stop().await;
}

#[tokio::test]
async fn full_status_shows_every_gate_and_what_blocks_progress() {
    let (app, _data) = started().await;
    push(&app, 900.0, 50).await;
    wait_for_evaluation(&app, "p95", "fail").await;
    let run = cutover(&app, Role::Viewer, &["status", "cli"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.stdout;
    assert!(out.starts_with("CLI test (cli)  CRITICAL"), "{out}");
    assert!(
        out.contains("state     running, stage canary (canary), traffic 10%"),
        "{out}"
    );
    assert!(out.contains("stages    [canary 10%] -> ga 100%"), "{out}");
    assert!(out.contains("blocked   gate p95 is failing"), "{out}");
    assert!(out.contains("gates     3 of 4 passing"), "{out}");
    let p95 = out
        .lines()
        .find(|l| l.contains("p95(latency_ms) ="))
        .unwrap();
    assert!(p95.starts_with(" *FAIL"), "guarding and failing: {p95}");
    assert!(p95.contains("p95(latency_ms) = "), "{p95}");
    assert!(p95.contains("<= 700"), "{p95}");
    app.stop().await;
}

#[tokio::test]
async fn gate_check_fails_until_the_gates_have_held_then_passes() {
    let (app, _data) = started().await;
    let run = cutover(&app, Role::Viewer, &["gate-check", "cli"]).await;
    assert_eq!(run.code, 1, "no data yet: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAIL p95 (NO DATA)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("gates guarding canary do not hold"),
        "{}",
        run.stdout
    );

    // Healthy traffic from now on: the 10 s hold completes after about 11 s.
    let feeding = {
        let url = app.url.clone();
        let token = app.token(Role::Ingest).to_string();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let event = json!({"values": {"latency_ms": 200, "error": false, "mode": "full", "cache_hit": true}});
            loop {
                let _ = http
                    .post(format!("{url}/api/rollouts/cli/events"))
                    .bearer_auth(&token)
                    .body(format!("{event}\n").repeat(10))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    wait_for_evaluation(&app, "p95", "pass").await;
    let passing = cutover(
        &app,
        Role::Viewer,
        &["gate-check", "cli", "--require", "passing"],
    )
    .await;
    assert_eq!(passing.code, 0, "{}", passing.stdout);
    let early = cutover(&app, Role::Viewer, &["gate-check", "cli"]).await;
    assert_eq!(early.code, 1, "passing but not yet held: {}", early.stdout);
    assert!(
        early.stdout.contains("FAIL p95 (PASS, not held yet)"),
        "{}",
        early.stdout
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let held = loop {
        let run = cutover(
            &app,
            Role::Viewer,
            &["gate-check", "cli", "--stage", "canary"],
        )
        .await;
        if run.code == 0 {
            break run;
        }
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            tokio::time::Instant::now() < deadline,
            "never held: {}",
            run.stdout
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        held.stdout.contains("gates guarding canary hold"),
        "{}",
        held.stdout
    );
    feeding.abort();

    let unknown = cutover(
        &app,
        Role::Viewer,
        &["gate-check", "cli", "--stage", "nope"],
    )
    .await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no stage \"nope\""),
        "{}",
        unknown.stderr
    );
    app.stop().await;
}

#[tokio::test]
async fn actions_follow_the_same_rules_and_exit_codes_as_the_api() {
    let (app, _data) = started().await;
    let viewer = cutover(&app, Role::Viewer, &["kill", "cli", "--reason", "test"]).await;
    assert_eq!(viewer.code, 1, "{}", viewer.stderr);
    assert!(
        viewer
            .stderr
            .contains("viewer may not kill; allowed: operator"),
        "the server's 403 message: {}",
        viewer.stderr
    );
    assert_eq!(
        app.get("/api/rollouts/cli").await["state"]["phase"],
        "running"
    );

    let no_reason = cutover(&app, Role::Operator, &["kill", "cli"]).await;
    assert_eq!(no_reason.code, 1);
    assert!(no_reason.stderr.contains("reason"), "{}", no_reason.stderr);

    let kill = cutover(
        &app,
        Role::Operator,
        &["kill", "cli", "--reason", "error rate 4% on canary"],
    )
    .await;
    assert_eq!(kill.code, 0, "{}", kill.stderr);
    assert!(
        kill.stdout.contains("cli: KILLED; now killed"),
        "{}",
        kill.stdout
    );
    let snapshot = app.get("/api/rollouts/cli").await;
    assert_eq!(snapshot["state"]["phase"], "killed");
    assert_eq!(
        snapshot["state"]["killed"]["reason"],
        "error rate 4% on canary"
    );
    assert_eq!(snapshot["traffic"], 0.0);

    let check = cutover(
        &app,
        Role::Viewer,
        &["gate-check", "cli", "--require", "passing"],
    )
    .await;
    assert_eq!(check.code, 1, "a killed rollout never passes");
    assert!(check.stdout.contains("is killed: error rate 4% on canary"));

    let progress = cutover(&app, Role::Operator, &["progress", "cli"]).await;
    assert_eq!(progress.code, 1);
    assert!(progress.stderr.contains("killed"), "{}", progress.stderr);

    let unknown = cutover(&app, Role::Operator, &["pause", "nope"]).await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no rollout \"nope\""),
        "{}",
        unknown.stderr
    );

    let bad_token = cutover_at(&app.url, Some("not-a-token"), &["status", "--once"]).await;
    assert_eq!(bad_token.code, 3, "{}", bad_token.stderr);
    let no_token = cutover_at(&app.url, None, &["status"]).await;
    assert_eq!(no_token.code, 3);
    assert!(
        no_token.stderr.contains("CUTOVER_TOKEN"),
        "{}",
        no_token.stderr
    );
    let usage = cutover(&app, Role::Operator, &["kill"]).await;
    assert_eq!(usage.code, 2, "usage error: {}", usage.stderr);

    let url = app.url.clone();
    app.stop().await;
    let gone = cutover_at(&url, Some("x"), &["status"]).await;
    assert_eq!(gone.code, 3, "{}", gone.stderr);
    assert!(gone.stderr.contains("cannot reach"), "{}", gone.stderr);
}

#[tokio::test]
async fn export_writes_rows_that_match_the_live_series_and_appends_without_duplicates() {
    let (app, data) = started().await;
    // Known traffic in three completed buckets: 10, 20 and 30 events of 100, 200, 300 ms.
    let now = cutover_server::clock::now();
    let bucket = now - now.rem_euclid(10_000);
    let mut body = String::new();
    for i in 1..=3i64 {
        let ts = bucket - (4 - i) * 10_000 + 1;
        let event = json!({"ts": ts, "values": {"latency_ms": 100 * i, "error": false, "mode": "full", "cache_hit": true}});
        body.push_str(&format!("{event}\n").repeat(10 * i as usize));
    }
    let response = app
        .http
        .post(format!("{}/api/rollouts/cli/events", app.url))
        .bearer_auth(app.token(Role::Ingest))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let file = data.path().join("export.csv");
    let path = file.to_str().unwrap();
    let run = cutover(
        &app,
        Role::Viewer,
        &["export", "cli", "--csv", path, "--since", "2m"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    for column in [
        "time",
        "ts_ms",
        "latency_ms.count",
        "latency_ms.p95",
        "error.rate",
        "mode.fallback",
        "gate:p95",
        "gate:cache",
    ] {
        assert!(
            header.iter().any(|h| h == column),
            "{column} missing from {header:?}"
        );
    }
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(rows.len() >= 11, "2 minutes of 10 s rows: {}", rows.len());

    // Each row agrees with the chart series the live stream sends for the same bucket.
    // A viewer starts from the newest tick, up to a second old: read on to one made after
    // the export.
    let exported = cutover_server::clock::now();
    let mut stream = app.stream("cli").await;
    let tick = loop {
        let tick = stream.next_named("tick").await;
        if tick["frame"]["at"].as_i64().unwrap() >= exported {
            break tick;
        }
    };
    let series = tick["frame"]["series"].as_array().unwrap();
    let live = |id: &str, t: i64| -> Option<f64> {
        let s = series.iter().find(|s| s["id"] == id).unwrap();
        let p = s["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["t"] == t)?;
        p["v"].as_f64()
    };
    for i in 1..=3i64 {
        let t = bucket - (4 - i) * 10_000;
        let row = rows
            .iter()
            .find(|r| r[col("ts_ms")] == t.to_string())
            .unwrap_or_else(|| panic!("no row for {t}"));
        assert_eq!(row[col("latency_ms.count")], (10 * i).to_string());
        let p95: f64 = row[col("latency_ms.p95")].parse().unwrap();
        let expected = live("latency_ms.p95", t).unwrap();
        assert!((p95 - expected).abs() < 1e-6, "{p95} vs live {expected}");
        assert!((p95 - 100.0 * i as f64).abs() <= i as f64 * 2.0, "{p95}");
        assert_eq!(&row[col("error.rate")], "0");
        assert_eq!(&row[col("gate:p95")], "pass", "{row:?}");
    }
    let empty = rows
        .iter()
        .find(|r| r[col("ts_ms")] == (bucket - 60_000).to_string())
        .unwrap();
    assert_eq!(
        &empty[col("latency_ms.p95")],
        "",
        "no data is empty, never zero"
    );
    assert_eq!(&empty[col("gate:p95")], "no_data");

    // Appending later continues after the last row: no header twice, no row twice.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let again = cutover(&app, Role::Viewer, &["export", "cli", "--csv", path]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("time,ts_ms").count(), 1);
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines().skip(1) {
        let ts = line.split(',').nth(1).unwrap().to_string();
        assert!(seen.insert(ts.clone()), "row {ts} written twice");
    }
    assert!(seen.len() > rows.len(), "the second run appended new rows");
    app.stop().await;
}

/// Runs `scenario` against its own server for `secs` and returns the snapshot afterwards.
async fn scenario(name: &str, secs: u32) -> (Value, Run) {
    let (app, _data) = started().await;
    let duration = format!("{secs}s");
    let run = cutover(
        &app,
        Role::Ingest,
        &[
            "simulate",
            "--plan",
            "cli",
            "--rate",
            "200/s",
            "--scenario",
            name,
            "--duration",
            &duration,
        ],
    )
    .await;
    // Let the evaluator see the last batch.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let snapshot = app.get("/api/rollouts/cli").await;
    app.stop().await;
    (snapshot, run)
}

fn verdicts(snapshot: &Value) -> Vec<(String, String)> {
    snapshot["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_string(),
                g["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Each scenario fails the gate it names within 5 s (well inside its stated "one gate
/// window", 10 s here) and leaves the others passing; healthy fails nothing.
#[tokio::test]
async fn simulate_scenarios_fail_the_gate_they_name_and_only_that_one() {
    let cases = [
        ("healthy", None),
        ("latency-spike", Some("p95")),
        ("error-spike", Some("errors")),
        ("fallback-storm", Some("fallback")),
        ("cache-cold", Some("cache")),
    ];
    let runs = futures::future::join_all(cases.iter().map(|(name, _)| scenario(name, 5))).await;
    for ((name, failing), (snapshot, run)) in cases.iter().zip(runs) {
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert!(run.stdout.contains("0 rejected"), "{name}: {}", run.stdout);
        for (gate, verdict) in verdicts(&snapshot) {
            let expected = if Some(gate.as_str()) == *failing {
                "fail"
            } else {
                "pass"
            };
            assert_eq!(verdict, expected, "{name}: gate {gate}");
        }
    }
}

#[tokio::test]
async fn no_data_turns_gates_to_no_data_once_their_window_has_passed() {
    let (app, _data) = started().await;
    let healthy = cutover(
        &app,
        Role::Ingest,
        &[
            "simulate",
            "--plan",
            "cli",
            "--rate",
            "100/s",
            "--duration",
            "3s",
        ],
    )
    .await;
    assert_eq!(healthy.code, 0, "{}", healthy.stderr);
    wait_for_evaluation(&app, "p95", "pass").await;
    let quiet = cutover(
        &app,
        Role::Ingest,
        &[
            "simulate",
            "--plan",
            "cli",
            "--scenario",
            "no-data",
            "--duration",
            "12s",
        ],
    )
    .await;
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert!(quiet.stdout.contains("sent 0 events"), "{}", quiet.stdout);
    let snapshot = wait_for_evaluation(&app, "p95", "no_data").await;
    assert!(
        verdicts(&snapshot).iter().all(|(_, v)| v == "no_data"),
        "{snapshot}"
    );
    app.stop().await;
}

#[tokio::test]
async fn check_override_approve_pause_and_resume_from_the_terminal() {
    let (app, _data) = started().await;
    let check = cutover(
        &app,
        Role::Operator,
        &[
            "check",
            "cli",
            "launch",
            "backups",
            "--note",
            "snapshot 02:10",
        ],
    )
    .await;
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.starts_with("cli: checked launch/backups;"),
        "{}",
        check.stdout
    );
    let snapshot = app.get("/api/rollouts/cli").await;
    assert_eq!(
        snapshot["state"]["checked"]["launch/backups"]["reason"],
        "snapshot 02:10"
    );
    let uncheck = cutover(
        &app,
        Role::Operator,
        &["check", "cli", "launch", "backups", "--uncheck"],
    )
    .await;
    assert_eq!(uncheck.code, 0, "{}", uncheck.stderr);
    assert!(
        app.get("/api/rollouts/cli").await["state"]["checked"]
            .as_object()
            .unwrap()
            .is_empty()
    );

    // Gates have no data yet: progress is refused with the reasons.
    let progress = cutover(&app, Role::Operator, &["progress", "cli"]).await;
    assert_eq!(progress.code, 1);
    assert!(
        progress.stderr.contains("gate p95 has no data")
            || progress.stderr.contains("gate p95 is failing"),
        "{}",
        progress.stderr
    );

    let by_operator = cutover(
        &app,
        Role::Operator,
        &["override", "cli", "p95", "--reason", "x"],
    )
    .await;
    assert_eq!(
        by_operator.code, 1,
        "override is a lead's call: {}",
        by_operator.stderr
    );
    let by_lead = cutover(
        &app,
        Role::Lead,
        &["override", "cli", "p95", "--reason", "batch job skews p95"],
    )
    .await;
    assert_eq!(by_lead.code, 0, "{}", by_lead.stderr);
    let snapshot = app.get("/api/rollouts/cli").await;
    assert_eq!(
        snapshot["state"]["overrides"]["p95"]["reason"],
        "batch job skews p95"
    );

    let approve = cutover(&app, Role::Lead, &["approve", "cli"]).await;
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    let twice = cutover(&app, Role::Lead, &["approve", "cli"]).await;
    assert_eq!(twice.code, 1);
    assert!(
        twice.stderr.contains("already approved"),
        "{}",
        twice.stderr
    );

    let pause = cutover(
        &app,
        Role::Operator,
        &["pause", "cli", "--reason", "investigating"],
    )
    .await;
    assert_eq!(pause.code, 0, "{}", pause.stderr);
    assert!(pause.stdout.contains("now paused"), "{}", pause.stdout);
    let resume = cutover(&app, Role::Lead, &["resume", "cli"]).await;
    assert_eq!(resume.code, 0, "{}", resume.stderr);
    assert!(resume.stdout.contains("now running"), "{}", resume.stdout);
    app.stop().await;
}

#[tokio::test]
async fn status_watch_redraws_until_interrupted() {
    let (app, _data) = started().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status", "--compact", "--watch", "--interval", "1"])
        .env("CUTOVER_SERVER", &app.url)
        .env("CUTOVER_TOKEN", app.token(Role::Viewer))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen < 3 {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("watch stopped redrawing")
            .unwrap()
            .unwrap();
        if line.starts_with("cli canary 10%") {
            seen += 1;
        }
    }
    child.kill().await.unwrap();
    app.stop().await;
}

/// `cutover status` shows the flags in force and where each comes from, and after a kill the
/// rollback's.
#[tokio::test]
async fn status_shows_the_flags_in_force_and_where_they_come_from() {
    let data = tempfile::tempdir().unwrap();
    let plan = cutover_core::plan::parse(
        "f.toml",
        "[rollout]\nid = \"f\"\ntitle = \"Flags\"\ninherit_flags = true\n\n\
         [rollback]\nflags = { NEW_PATH = false }\n\n\
         [[stage]]\nid = \"canary\"\ntraffic = 10\nflags = { NEW_PATH = true, MODE = \"lite\" }\n\n\
         [[stage]]\nid = \"half\"\ntraffic = 50\nflags = { MODE = \"full\" }\n\n\
         [[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n",
    )
    .unwrap();
    let app = TestApp::start(data.path(), vec![plan]).await;
    for action in ["start", "progress"] {
        let (status, body) = app
            .post(
                Some(Role::Lead),
                &format!("/api/rollouts/f/{action}"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let run = cutover(&app, Role::Viewer, &["status", "f"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("flags     MODE=full (set by half)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("          NEW_PATH=true (since canary)"),
        "{}",
        run.stdout
    );
    let (status, _) = app
        .post(
            Some(Role::Lead),
            "/api/rollouts/f/kill",
            json!({ "reason": "test" }),
        )
        .await;
    assert_eq!(status, 200);
    let run = cutover(&app, Role::Viewer, &["status", "f"]).await;
    assert!(
        run.stdout.contains("flags     NEW_PATH=false (rollback)"),
        "{}",
        run.stdout
    );
}
