//! The war room is told: a real `cutover serve` with `[[notify]]` channels posting to a
//! receiver on loopback. Slack-compatible text and signed webhook JSON arrive for a stage
//! entered, an alert fired by a trigger and a kill, with the values and the page's link; the
//! HMAC verifies; a receiver that fails three times then recovers gets the kill once; a kill
//! with one channel down still commits at once, and each channel's status is on the snapshot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

/// What the receiver got: path, signature header, body, and when.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub path: String,
    signature: Option<String>,
    timestamp: Option<i64>,
    pub body: Vec<u8>,
    pub status: u16,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
}

async fn receive(
    State(r): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut got = r.got.lock().unwrap();
    let tries = got.iter().filter(|g| g.path == path).count();
    // The flaky receiver fails its first three calls, then recovers; the picky one refuses
    // the stage-entered message for good (a 400) and takes the rest.
    let poison = path == "picky" && String::from_utf8_lossy(&body).contains("entered canary");
    let status = if path == "flaky" && tries < 3 {
        503
    } else if poison {
        400
    } else {
        200
    };
    got.push(Got {
        path,
        signature: headers
            .get("x-cutover-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        timestamp: headers
            .get("x-cutover-timestamp")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
        body: body.to_vec(),
        status,
        at: Instant::now(),
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub(crate) async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, base)
    }

    pub(crate) fn bodies(&self, path: &str) -> Vec<Got> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|g| g.path == path).cloned().collect()
    }

    /// Waits (a guard, not a claim) until `path` got a body that `check` accepts.
    pub(crate) async fn wait(&self, path: &str, check: impl Fn(&Value) -> bool) -> Got {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(g) = self.bodies(path).into_iter().find(|g| {
                g.status == 200 && serde_json::from_slice(&g.body).is_ok_and(|v: Value| check(&v))
            }) {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never got it: {:?}",
                self.bodies(path)
                    .iter()
                    .map(|g| String::from_utf8_lossy(&g.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A critical alert on p95 latency: what the drills trip.
const SLOW: &str = r#"[[trigger]]
id = "slow"
title = "p95 over 500ms"
expr = "p95(latency_ms) > 500ms"
window = "1m"
for = "0s"
action = "alert"
severity = "critical"
"#;

fn plan(base: &str) -> String {
    crate::fixtures::two_stage_plan(
        "drill",
        "Notify drill",
        &format!(
            r#"
{SLOW}

[[notify]]
id = "war-room"
kind = "slack"
url = "{base}/slack"
allow_private = true

[[notify]]
id = "pager"
kind = "webhook"
url = "{base}/hook"
allow_private = true
secret_env = "DRILL_HMAC"
events = ["alert_fired", "kill"]

[[notify]]
id = "flaky"
kind = "webhook"
url = "{base}/flaky"
allow_private = true
events = ["kill"]

[[notify]]
id = "down"
kind = "webhook"
url = "http://127.0.0.1:1/nothing"
allow_private = true
events = ["kill"]

[[notify]]
id = "picky"
kind = "slack"
url = "{base}/picky"
allow_private = true
events = ["stage_entered", "kill"]
"#
        ),
    )
}

/// `cutover serve` on the plan, with a user per role; returns the child, its URL and tokens.
pub(crate) async fn serve(
    dir: &std::path::Path,
    plans: &std::path::Path,
) -> (tokio::process::Child, String, String) {
    let bin = env!("CARGO_BIN_EXE_cutover");
    let add = |role: &str| {
        std::process::Command::new(bin)
            .args(["user", "add", role, "--role", role, "--data-dir"])
            .arg(dir)
            .output()
            .unwrap()
    };
    let operator = String::from_utf8(add("operator").stdout)
        .unwrap()
        .trim()
        .to_string();
    let ingest = String::from_utf8(add("ingest").stdout)
        .unwrap()
        .trim()
        .to_string();
    let mut child = tokio::process::Command::new(bin)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--public-url",
            "http://cutover.example",
            "--data-dir",
        ])
        .arg(dir)
        .arg("--plans")
        .arg(plans)
        .env("DRILL_HMAC", "drill-secret")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("serve printed nothing")
            .unwrap()
            .expect("serve ended");
        if let Some(rest) = line.split("at http://").nth(1) {
            break format!("http://{}", rest.trim());
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url, format!("{operator}\n{ingest}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_war_room_is_told_signed_retried_and_never_in_the_way() {
    let (receiver, base) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(plans.path().join("drill.toml"), plan(&base)).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, ingest) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    let post = |path: &str, token: &str, body: Value| {
        http.post(format!("{url}/api/rollouts/drill/{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    // A stage entered: the Slack channel hears of it, with the page's link.
    assert_eq!(
        post("start", operator, json!({})).await.unwrap().status(),
        200
    );
    let entered = receiver
        .wait("slack", |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("entered canary"))
        })
        .await;
    let text: Value = serde_json::from_slice(&entered.body).unwrap();
    let text = text["text"].as_str().unwrap();
    assert!(
        text.starts_with("Notify drill: entered canary at 10%"),
        "{text}"
    );
    assert!(text.ends_with("http://cutover.example/r/drill"), "{text}");
    assert!(
        receiver.bodies("hook").is_empty(),
        "the pager takes alerts and kills only"
    );

    // Slow traffic: the trigger fires an alert; both channels hear of it, with the value.
    let slow = "{\"values\":{\"latency_ms\":900}}\n".repeat(50);
    let pushed_at = Instant::now();
    let pushed = http
        .post(format!("{url}/api/rollouts/drill/events"))
        .bearer_auth(ingest)
        .body(slow)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    let alert = receiver.wait("hook", |v| v["event"] == "alert_fired").await;
    let body: Value = serde_json::from_slice(&alert.body).unwrap();
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["title"], "Notify drill: ALERT p95 over 500ms");
    assert!(
        body["lines"][0]
            .as_str()
            .is_some_and(|l| l.contains("p95(latency_ms) = ")),
        "{body}"
    );
    // The signature is the HMAC of the time and exactly the body received, under the shared
    // secret, checked as a receiver would with the hmac crate; the time is within a minute.
    let timestamp = alert.timestamp.expect("a timestamp header");
    assert!((cutover_server::clock::now() / 1000 - timestamp).abs() < 60);
    let expected = |key: &[u8]| {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&alert.body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    assert_eq!(
        alert.signature.as_deref(),
        Some(expected(b"drill-secret").as_str())
    );
    assert_ne!(
        alert.signature.as_deref(),
        Some(expected(b"other-secret").as_str())
    );
    receiver
        .wait("slack", |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("ALERT p95 over 500ms"))
        })
        .await;

    // A kill with one channel down (nothing listens) and one failing: it commits at once.
    let asked = Instant::now();
    let killed = post("kill", operator, json!({"reason": "error budget gone"}))
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(killed.status(), 200);
    let snapshot: Value = killed.json().await.unwrap();
    assert_eq!(snapshot["state"]["phase"], "killed");
    assert!(
        took < Duration::from_secs(2),
        "the kill waited on its channels: {took:?}"
    );
    let kill = receiver.wait("hook", |v| v["event"] == "kill").await;
    let body: Value = serde_json::from_slice(&kill.body).unwrap();
    assert!(
        body["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "error budget gone"),
        "{body}"
    );
    println!(
        "kill: answered in {} ms, webhook arrived {} ms after it was asked",
        took.as_millis(),
        kill.at.duration_since(asked).as_millis()
    );
    println!(
        "alert: webhook arrived {} ms after the events that fired it were sent",
        alert.at.duration_since(pushed_at).as_millis()
    );

    // The flaky receiver: three failures, then the kill once, and nothing after.
    receiver.wait("flaky", |v| v["event"] == "kill").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flaky = receiver.bodies("flaky");
    let statuses: Vec<u16> = flaky.iter().map(|g| g.status).collect();
    assert_eq!(
        statuses,
        [503, 503, 503, 200],
        "retried until taken, then once"
    );

    // Each channel's status is on the rollout's snapshot, the failing one with its reason.
    let snapshot: Value = http
        .get(format!("{url}/api/rollouts/drill"))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let channels = snapshot["channels"].as_array().unwrap();
    let of = |id: &str| channels.iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(of("war-room")["delivered"], 3, "{channels:?}");
    assert_eq!(of("pager")["delivered"], 2);
    assert_eq!(of("flaky")["delivered"], 1);
    // A message the receiver refuses is dropped, not retried forever ahead of the kill.
    receiver
        .wait("picky", |v| {
            v["text"].as_str().is_some_and(|t| t.contains("KILLED"))
        })
        .await;
    let picky = of("picky");
    assert_eq!(
        (picky["delivered"].clone(), picky["dropped"].clone()),
        (json!(1), json!(1))
    );
    let down = of("down");
    assert_eq!(down["failing"], true);
    assert_eq!(down["pending"], 1);
    assert!(
        down["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach the channel"),
        "{down}"
    );
}

fn escalating_plan(id: &str, base: &str) -> String {
    crate::fixtures::two_stage_plan(
        id,
        &format!("Escalation drill {id}"),
        &format!(
            r#"
[[trigger]]
id = "slow"
title = "p95 over 500ms"
expr = "p95(latency_ms) > 500ms"
window = "1m"
for = "0s"
action = "alert"
severity = "warning"

[[notify]]
id = "first"
kind = "slack"
url = "{base}/{id}-first"
allow_private = true
escalate_after = "3s"

[[notify]]
id = "second"
kind = "webhook"
url = "{base}/{id}-second"
allow_private = true
events = ["kill"]
"#
        ),
    )
}

/// An alert nobody acknowledges reaches the next channel after its channel's delay; one
/// acknowledged in time never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_alert_escalates_and_an_acknowledged_one_does_not() {
    let (receiver, base) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    for id in ["ignored", "handled"] {
        std::fs::write(
            plans.path().join(format!("{id}.toml")),
            escalating_plan(id, &base),
        )
        .unwrap();
    }
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, ingest) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    for id in ["ignored", "handled"] {
        let started = http
            .post(format!("{url}/api/rollouts/{id}/start"))
            .bearer_auth(operator)
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 200);
        let pushed = http
            .post(format!("{url}/api/rollouts/{id}/events"))
            .bearer_auth(ingest)
            .body("{\"values\":{\"latency_ms\":900}}\n".repeat(50))
            .send()
            .await
            .unwrap();
        assert_eq!(pushed.status(), 200);
    }
    // Someone is on the "handled" one as soon as it is open: well inside its 3 s, however
    // slowly the deliveries below arrive on a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let state =
            crate::support::get_json(&http, &format!("{url}/api/rollouts/handled"), operator).await;
        if state["state"]["open_alerts"].get("slow").is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no open alert: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked = http
        .post(format!("{url}/api/rollouts/handled/alerts/slow/ack"))
        .bearer_auth(operator)
        .json(&json!({"reason": "looking at it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), 200);
    let state: Value = acked.json().await.unwrap();
    assert_eq!(state["state"]["open_alerts"], json!({}));
    let again = http
        .post(format!("{url}/api/rollouts/handled/alerts/slow/ack"))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "nothing open to acknowledge");
    // Both alerts reached their first channel (the alert itself, not the acknowledgement,
    // which names it too).
    for id in ["ignored", "handled"] {
        receiver
            .wait(&format!("{id}-first"), |v| {
                v["text"].as_str().is_some_and(|t| {
                    t.contains("ALERT p95 over 500ms") && !t.contains("acknowledged")
                })
            })
            .await;
    }

    // The ignored one moves on to the second channel after its 3 s, marked as escalated.
    let escalated = receiver
        .wait("ignored-second", |v| v["escalated_from"] == "first")
        .await;
    let body: Value = serde_json::from_slice(&escalated.body).unwrap();
    assert_eq!(body["event"], "alert_fired");
    assert!(
        body["title"].as_str().unwrap().ends_with("unacknowledged"),
        "{body}"
    );
    // Once, and the handled one never.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(receiver.bodies("ignored-second").len(), 1);
    assert!(receiver.bodies("handled-second").is_empty());
}

/// An actuator that cannot reach its webhook: after three failed attempts at a version the
/// channel hears it keeps failing, once, with the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actuator_that_keeps_failing_is_told_once() {
    let (receiver, base) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan = crate::fixtures::two_stage_plan(
        "stuck",
        "Stuck actuator",
        &format!(
            r#"
[[actuator]]
id = "flags"
kind = "webhook"
url = "http://127.0.0.1:1/flags"
allow_private = true

[[notify]]
id = "ops"
kind = "webhook"
url = "{base}/ops"
allow_private = true
events = ["actuator_failing"]
"#
        ),
    );
    std::fs::write(plans.path().join("stuck.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, _) = tokens.split_once('\n').unwrap();
    let started = crate::support::http()
        .post(format!("{url}/api/rollouts/stuck/start"))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let told = receiver
        .wait("ops", |v| v["event"] == "actuator_failing")
        .await;
    let body: Value = serde_json::from_slice(&told.body).unwrap();
    assert!(
        body["title"]
            .as_str()
            .unwrap()
            .starts_with("Stuck actuator: actuator flags keeps failing to apply version"),
        "{body}"
    );
    assert!(
        body["lines"][0]
            .as_str()
            .unwrap()
            .contains("cannot reach the webhook"),
        "{body}"
    );
    // It keeps failing (retried with backoff), and the channel heard of it once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.bodies("ops").len(), 1);
}

/// Every channel down: the kill still answers at once, killed, and the channels say they are
/// failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_with_every_channel_down_commits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan = crate::fixtures::two_stage_plan(
        "alone",
        "Nobody listening",
        r#"
[[notify]]
id = "refused"
kind = "webhook"
url = "http://127.0.0.1:1/refused"
allow_private = true

[[notify]]
id = "unset"
kind = "slack"
url_env = "CUTOVER_TEST_NEVER_SET"
"#,
    );
    std::fs::write(plans.path().join("alone.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, _) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    let started = http
        .post(format!("{url}/api/rollouts/alone/start"))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let asked = Instant::now();
    let killed = http
        .post(format!("{url}/api/rollouts/alone/kill"))
        .bearer_auth(operator)
        .json(&json!({"reason": "drill"}))
        .send()
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(killed.status(), 200);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let snapshot =
            crate::support::get_json(&http, &format!("{url}/api/rollouts/alone"), operator).await;
        assert_eq!(snapshot["state"]["phase"], "killed");
        let channels = snapshot["channels"].as_array().unwrap().clone();
        let failing = |id: &str, why: &str| {
            channels.iter().any(|c| {
                c["id"] == id
                    && c["failing"] == true
                    && c["error"].as_str().is_some_and(|e| e.contains(why))
            })
        };
        if failing("refused", "cannot reach the channel")
            && failing(
                "unset",
                "environment variable CUTOVER_TEST_NEVER_SET is not set",
            )
        {
            break;
        }
        assert!(Instant::now() < deadline, "{channels:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A plan whose first channel escalates to the second after 1 s, both at `base`.
fn restart_plan(base: &str) -> cutover_core::plan::Plan {
    let text = crate::fixtures::two_stage_plan(
        "restart",
        "Restarted",
        &format!(
            r#"
[[trigger]]
id = "slow"
title = "p95 over 500ms"
expr = "p95(latency_ms) > 500ms"
window = "1m"
for = "0s"
action = "alert"
severity = "warning"

[[notify]]
id = "first"
kind = "webhook"
url = "{base}/first"
allow_private = true
escalate_after = "1s"

[[notify]]
id = "second"
kind = "webhook"
url = "{base}/second"
allow_private = true
"#
        ),
    );
    cutover_core::plan::parse("restart.toml", &text).unwrap()
}

/// The outboxes are stored: a kill told while its channel was down is sent once the channel
/// is back after a restart, and an alert escalated before the restart is not escalated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_neither_loses_a_queued_kill_nor_escalates_again() {
    use crate::support::TestApp;
    use cutover_core::role::Role;
    let (receiver, base) = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![restart_plan(&base)]).await;
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/restart/start",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let pushed = app
        .http
        .post(format!("{}/api/rollouts/restart/events", app.url))
        .bearer_auth(app.token(Role::Ingest))
        .body("{\"values\":{\"latency_ms\":900}}\n".repeat(50))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 200);
    let escalation = |v: &Value| v["escalated_from"] == "first" && v["event"] == "alert_fired";
    receiver.wait("second", escalation).await;
    // The receiver records a body before it answers: wait until the server has counted the
    // escalation delivered, or a stop in between leaves it queued and it is rightly sent again.
    app.wait_for("/api/rollouts/restart", "the escalation delivered", |s| {
        let second = s["channels"]
            .as_array()?
            .iter()
            .find(|c| c["id"] == "second")?;
        (second["delivered"].as_u64()? >= 1).then_some(())
    })
    .await;
    app.stop().await;

    // Down while the kill is told: the first channel now points nowhere.
    let app = TestApp::start(data.path(), vec![restart_plan("http://127.0.0.1:1")]).await;
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/restart/kill",
            json!({"reason": "told while the channels are down"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_for("/api/rollouts/restart", "the channels failing", |s| {
        let failing = s["channels"]
            .as_array()?
            .iter()
            .all(|c| c["failing"] == true);
        failing.then_some(())
    })
    .await;
    // Stored within a second of the change.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    app.stop().await;

    // Back, after a restart: the kill arrives on both channels, the escalation is not sent
    // again.
    let app = TestApp::start(data.path(), vec![restart_plan(&base)]).await;
    let kill = |v: &Value| v["event"] == "kill";
    receiver.wait("first", kill).await;
    receiver.wait("second", kill).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let escalations = receiver
        .bodies("second")
        .iter()
        .filter(|g| serde_json::from_slice::<Value>(&g.body).is_ok_and(|v| escalation(&v)))
        .count();
    assert_eq!(escalations, 1, "escalated again after the restart");
    app.stop().await;
}

/// Checks one body against PagerDuty's Events API v2 schema, as its endpoint would.
pub(crate) fn events_v2(body: &Value) -> Result<(), String> {
    let text = |v: &Value, name: &str, max: usize| -> Result<(), String> {
        match v[name].as_str() {
            Some(s) if !s.is_empty() && s.len() <= max => Ok(()),
            _ => Err(format!(
                "{name} must be a string of 1 to {max} characters: {body}"
            )),
        }
    };
    text(body, "routing_key", 128)?;
    text(body, "dedup_key", 255)?;
    match body["event_action"].as_str() {
        Some("trigger") => {
            let payload = &body["payload"];
            text(payload, "summary", 1024)?;
            text(payload, "source", 255)?;
            if !matches!(
                payload["severity"].as_str(),
                Some("critical" | "error" | "warning" | "info")
            ) {
                return Err(format!("severity: {body}"));
            }
            if let Some(t) = payload["timestamp"].as_str() {
                humantime::parse_rfc3339(t).map_err(|e| format!("timestamp {t}: {e}"))?;
            }
            Ok(())
        }
        Some("acknowledge" | "resolve") if body.get("payload").is_none() => Ok(()),
        _ => Err(format!("event_action: {body}")),
    }
}

/// Paging: an alert triggers an incident, its acknowledgement acknowledges it and its
/// resolution resolves it, all under one dedup key; a manual kill opens one of its own that
/// an acknowledgement acknowledges. Every body is a valid Events API v2 event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_pages_acknowledges_and_resolves_one_incident_per_episode() {
    let (receiver, base) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan = crate::fixtures::two_stage_plan(
        "paged",
        "Paged",
        &format!(
            r#"
{SLOW}

[[notify]]
id = "oncall"
kind = "pagerduty"
url = "{base}/pd"
allow_private = true
routing_key_env = "DRILL_HMAC"
"#
        ),
    );
    std::fs::write(plans.path().join("paged.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, ingest) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    let post = |path: &str, token: &str, body: String| {
        http.post(format!("{url}/api/rollouts/paged/{path}"))
            .bearer_auth(token)
            .body(body)
            .send()
    };
    let act = |path: &str, reason: &str| {
        http.post(format!("{url}/api/rollouts/paged/{path}"))
            .bearer_auth(operator)
            .json(&json!({ "reason": reason }))
            .send()
    };
    assert_eq!(act("start", "go").await.unwrap().status(), 200);
    let slow = "{\"values\":{\"latency_ms\":900}}\n".repeat(50);
    assert_eq!(post("events", ingest, slow).await.unwrap().status(), 200);
    let fired = receiver
        .wait("pd", |v| v["event_action"] == "trigger")
        .await;
    let fired: Value = serde_json::from_slice(&fired.body).unwrap();
    assert_eq!(fired["dedup_key"], "cutover/paged/alert:slow", "{fired}");
    assert_eq!(fired["payload"]["severity"], "critical");
    assert_eq!(fired["routing_key"], "drill-secret");
    assert!(
        fired["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("ALERT p95 over 500ms")
    );
    assert_eq!(fired["links"][0]["href"], "http://cutover.example/r/paged");

    let acked = http
        .post(format!("{url}/api/rollouts/paged/alerts/slow/ack"))
        .bearer_auth(operator)
        .json(&json!({"reason": "on it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), 200);
    let ack = receiver
        .wait("pd", |v| v["event_action"] == "acknowledge")
        .await;
    let ack: Value = serde_json::from_slice(&ack.body).unwrap();
    assert_eq!(ack["dedup_key"], "cutover/paged/alert:slow");

    let fast = "{\"values\":{\"latency_ms\":10}}\n".repeat(3000);
    assert_eq!(post("events", ingest, fast).await.unwrap().status(), 200);
    let resolved = receiver
        .wait("pd", |v| v["event_action"] == "resolve")
        .await;
    let resolved: Value = serde_json::from_slice(&resolved.body).unwrap();
    assert_eq!(resolved["dedup_key"], "cutover/paged/alert:slow");

    // A manual kill pages too, and its acknowledgement acknowledges that incident.
    assert_eq!(act("kill", "by hand").await.unwrap().status(), 200);
    receiver
        .wait("pd", |v| {
            v["event_action"] == "trigger" && v["dedup_key"] == "cutover/paged/kill"
        })
        .await;
    let acked = http
        .post(format!("{url}/api/rollouts/paged/alerts/kill/ack"))
        .bearer_auth(operator)
        .json(&json!({"reason": "we did it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), 200);
    receiver
        .wait("pd", |v| {
            v["event_action"] == "acknowledge" && v["dedup_key"] == "cutover/paged/kill"
        })
        .await;
    for got in receiver.bodies("pd") {
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        events_v2(&body).unwrap();
    }
}

/// A real SMTP server (aiosmtpd, which `./x test` installs from PyPI) on a loopback port of
/// its own, writing what it receives into a Maildir.
struct SmtpServer {
    port: u16,
    maildir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        SmtpServer::start_with(&[]).await
    }

    /// With STARTTLS required, under a certificate for 127.0.0.1 from a CA made here; returns
    /// the server and the CA's PEM file.
    async fn start_tls(dir: &std::path::Path) -> (SmtpServer, std::path::PathBuf) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let (ca_file, cert, key_file) = (
            dir.join("ca.pem"),
            dir.join("smtp.pem"),
            dir.join("smtp.key"),
        );
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let args = [
            "--tlscert".to_string(),
            cert.to_string_lossy().into_owned(),
            "--tlskey".to_string(),
            key_file.to_string_lossy().into_owned(),
        ];
        (SmtpServer::start_with(&args).await, ca_file)
    }

    async fn start_with(extra: &[String]) -> SmtpServer {
        let maildir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir(maildir.path().join(sub)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pythonpath = std::env::var("CUTOVER_PYTHONPATH")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/py").into());
        let child = tokio::process::Command::new("python3")
            .env("PYTHONPATH", &pythonpath)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen (is it installed in {pythonpath}? ./x test installs it)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpServer {
            port,
            maildir,
            _child: child,
        }
    }

    /// Every message received so far, raw.
    /// The newest message, waited for up to 30 s; `what` says what did not arrive.
    async fn next_mail(&self, what: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(m) = self.messages().pop() {
                return m;
            }
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.path().join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read(e.path()).unwrap());
                }
            }
        }
        out
    }
}

/// A kill is mailed through a real SMTP server: the message parses, comes from and goes to
/// the plan's addresses, says what happened in its subject and who did it in its body, and
/// links the rollout's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_is_mailed_through_a_real_smtp_server() {
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan = crate::fixtures::two_stage_plan(
        "mailed",
        "Mailed",
        &format!(
            r#"
[[notify]]
id = "leads"
kind = "email"
smtp = "127.0.0.1:{}"
tls = "none"
allow_private = true
from = "cutover@example.test"
to = ["leads@example.test", "oncall@example.test"]
events = ["kill"]
"#,
            smtp.port
        ),
    );
    std::fs::write(plans.path().join("mailed.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, _) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    start_and_kill(&http, &url, operator, "mailed", "error budget burning").await;
    let raw = smtp.next_mail("no mail arrived").await;
    let mail = mailparse::parse_mail(&raw).unwrap();
    use mailparse::MailHeaderMap;
    let header = |name: &str| mail.headers.get_first_value(name).unwrap_or_default();
    assert_eq!(header("Subject"), "Mailed: KILLED at canary");
    assert!(header("From").contains("cutover@example.test"));
    let to = header("To");
    assert!(
        to.contains("leads@example.test") && to.contains("oncall@example.test"),
        "{to}"
    );
    let body = mail.get_body().unwrap();
    assert!(body.contains("error budget burning"), "{body}");
    assert!(body.contains("by operator"), "{body}");
    assert!(body.contains("http://cutover.example/r/mailed"), "{body}");
    assert_eq!(smtp.messages().len(), 1, "one kill, one mail");
}

/// A channel that asks for status updates gets one at the start and then one per interval,
/// rendered from the live state; a channel that did not ask gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_updates_arrive_on_their_interval_where_asked() {
    let (receiver, base) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan = crate::fixtures::two_stage_plan(
        "updates",
        "Updates",
        &format!(
            r#"
[[notify]]
id = "room"
kind = "webhook"
url = "{base}/room"
allow_private = true
status_every = "10s"

[[notify]]
id = "quiet"
kind = "webhook"
url = "{base}/quiet"
allow_private = true
"#
        ),
    );
    std::fs::write(plans.path().join("updates.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, _) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    let r = http
        .post(format!("{url}/api/rollouts/updates/start"))
        .bearer_auth(operator)
        .json(&json!({ "reason": "go" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = receiver.wait("room", |v| v["event"] == "status").await;
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["title"], "Updates: status update");
    assert_eq!(body["lines"][0], "RUNNING at canary, 10% traffic", "{body}");
    // The next one ten seconds on (a guard of 30 s; the interval is checked below).
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let statuses: Vec<Got> = receiver
            .bodies("room")
            .into_iter()
            .filter(|g| String::from_utf8_lossy(&g.body).contains("\"status\""))
            .collect();
        if statuses.len() >= 2 {
            break statuses[1].clone();
        }
        assert!(Instant::now() < deadline, "no second status update");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gap = second.at.duration_since(first.at).as_secs_f64();
    assert!((gap - 10.0).abs() <= 5.0, "{gap} s between updates");
    assert!(
        receiver
            .bodies("quiet")
            .iter()
            .all(|g| !String::from_utf8_lossy(&g.body).contains("\"status\"")),
        "a channel that did not ask gets no status"
    );
}

/// STARTTLS, as the default `tls` asks: the mail server requires it (aiosmtpd refuses mail
/// before it) under a certificate from the plan's `ca_file`; the kill arrives. A server whose
/// certificate the CA did not sign is refused, and the channel says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_is_mailed_over_starttls_to_a_server_of_the_companys_own_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (smtp, ca_file) = SmtpServer::start_tls(certs.path()).await;
    // Another CA, which signed nothing the server shows.
    let other = certs.path().join("other.pem");
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&other, other_ca.self_signed(&other_key).unwrap().pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let channel = |id: &str, ca: &std::path::Path| {
        format!(
            r#"
[[notify]]
id = "{id}"
kind = "email"
smtp = "127.0.0.1:{}"
ca_file = "{}"
allow_private = true
from = "cutover@example.test"
to = ["leads@example.test"]
events = ["kill"]
"#,
            smtp.port,
            ca.display()
        )
    };
    let plan = crate::fixtures::two_stage_plan(
        "tls",
        "Over TLS",
        &(channel("leads", &ca_file) + &channel("strangers", &other)),
    );
    std::fs::write(plans.path().join("tls.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, _) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    start_and_kill(&http, &url, operator, "tls", "over tls").await;
    let raw = smtp.next_mail("no mail arrived over STARTTLS").await;
    let mail = mailparse::parse_mail(&raw).unwrap();
    assert!(mail.get_body().unwrap().contains("over tls"));
    // The channel checked against the wrong CA failed, and says it was the certificate.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s: Value = http
            .get(format!("{url}/api/rollouts/tls"))
            .bearer_auth(operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let strangers = s["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "strangers")
            .cloned()
            .unwrap();
        if strangers["failing"] == true {
            assert_eq!(strangers["delivered"], 0, "{strangers}");
            break;
        }
        assert!(Instant::now() < deadline, "{strangers}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(smtp.messages().len(), 1, "only the trusted channel's mail");
}

/// Starts `rollout` and kills it with `reason`, as the operator.
async fn start_and_kill(
    http: &reqwest::Client,
    url: &str,
    operator: &str,
    rollout: &str,
    reason: &str,
) {
    for (action, reason) in [("start", "go"), ("kill", reason)] {
        let r = http
            .post(format!("{url}/api/rollouts/{rollout}/{action}"))
            .bearer_auth(operator)
            .json(&json!({ "reason": reason }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}
