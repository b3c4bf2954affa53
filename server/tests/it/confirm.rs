//! Confirmed actuation: a simulated fleet of 12 instances polls `/flags` as services do
//! (naming themselves, sending back the ETag they hold); one stops. The kill shows "applied by
//! 11 of 12" on the snapshot and in `cutover status`, pages (PagerDuty Events v2 on loopback)
//! once its `[confirm] within` has passed, and resolves that page when the last instance
//! catches up; the kill's record keeps when each instance confirmed it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::notify::{Receiver, events_v2, serve};

/// One instance: polls every 100 ms with the ETag it holds, until told to stop for good.
fn instance(
    url: String,
    token: String,
    name: String,
    paused: Arc<AtomicBool>,
    parked: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = crate::support::http();
        let mut etag: Option<String> = None;
        while !done.load(Ordering::Relaxed) {
            // Seen paused here, with no request of its own in flight: it reads no more.
            let pause = paused.load(Ordering::Relaxed);
            parked.store(pause, Ordering::Relaxed);
            if !pause {
                let mut request = http
                    .get(format!("{url}/api/rollouts/fleet/flags"))
                    .bearer_auth(&token)
                    .header("x-cutover-instance", &name);
                if let Some(e) = &etag {
                    request = request.header("if-none-match", e);
                }
                if let Ok(response) = request.send().await
                    && let Some(e) = response.headers().get("etag")
                {
                    etag = e.to_str().ok().map(str::to_string);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn snapshot(url: &str, token: &str) -> Value {
    let url = format!("{url}/api/rollouts/fleet");
    crate::support::get_json(&crate::support::http(), &url, token).await
}

async fn wait_for(url: &str, token: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = snapshot(url, token).await;
        if check(&s["confirmation"]) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {}",
            s["confirmation"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_is_confirmed_by_the_fleet_and_paged_while_it_is_not() {
    let (receiver, base) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan = crate::fixtures::two_stage_plan(
        "fleet",
        "Fleet",
        &format!(
            r#"
[confirm]
within = "3s"

[[notify]]
id = "oncall"
kind = "pagerduty"
url = "{base}/pd"
allow_private = true
routing_key_env = "DRILL_HMAC"
"#
        ),
    );
    std::fs::write(plans.path().join("fleet.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, _) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    let act = |path: &str| {
        http.post(format!("{url}/api/rollouts/fleet/{path}"))
            .bearer_auth(operator)
            .json(&json!({ "reason": "drill" }))
            .send()
    };
    assert_eq!(act("start").await.unwrap().status(), 200);

    let done = Arc::new(AtomicBool::new(false));
    let pauses: Vec<Arc<AtomicBool>> = (0..12).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let parked: Vec<Arc<AtomicBool>> = (0..12).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let fleet: Vec<_> = (0..12)
        .map(|i| {
            instance(
                url.clone(),
                operator.to_string(),
                format!("web-{i}"),
                pauses[i].clone(),
                parked[i].clone(),
                done.clone(),
            )
        })
        .collect();
    // Every instance holds the running stage.
    wait_for(&url, operator, "12 of 12 before the kill", |c| {
        c["applied"] == 12 && c["expected"] == 12
    })
    .await;

    // web-7 stops polling; the kill goes out.
    pauses[7].store(true, Ordering::Relaxed);
    // Not a sleep: a read still in flight when the kill commits would confirm it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !parked[7].load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "web-7 never stopped reading");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed_at = Instant::now();
    assert_eq!(act("kill").await.unwrap().status(), 200);
    let s = wait_for(&url, operator, "11 of 12 after the kill", |c| {
        c["killed"] == true && c["applied"] == 11 && c["expected"] == 12
    })
    .await;
    let c = &s["confirmation"];
    assert_eq!(c["lagging"][0]["instance"], "web-7", "{c}");
    let kill_version = c["version"].as_u64().unwrap();
    assert!(c["lagging"][0]["version"].as_u64().unwrap() < kill_version);
    let first = c["first"].as_i64().unwrap() - c["since"].as_i64().unwrap();
    let last11 = c["last"].as_i64().unwrap() - c["since"].as_i64().unwrap();
    println!(
        "kill -> first confirmation {first} ms, 11th {last11} ms (12 instances polling every 100 ms)"
    );
    assert!(last11 < 3_000, "the live instances took {last11} ms");

    // `cutover status` says it in words.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status", "fleet"])
        .env("CUTOVER_SERVER", &url)
        .env("CUTOVER_TOKEN", operator)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("APPLIED   kill applied by 11 of 12 instances, web-7 still on version"),
        "{text}"
    );

    // Paged once the 3 s have passed, not before.
    let paged = receiver
        .wait("pd", |v| {
            v["event_action"] == "trigger" && v["dedup_key"] == "cutover/fleet/unconfirmed"
        })
        .await;
    let after = paged.at.duration_since(killed_at);
    assert!(
        after >= Duration::from_millis(2_900),
        "paged after {after:?}"
    );
    let body: Value = serde_json::from_slice(&paged.body).unwrap();
    let summary = body["payload"]["summary"].as_str().unwrap();
    assert!(summary.contains("kill NOT confirmed"), "{summary}");
    assert!(
        body.to_string().contains("web-7 still on version"),
        "{body}"
    );

    // web-7 comes back: the kill is complete, and the page resolves.
    pauses[7].store(false, Ordering::Relaxed);
    wait_for(&url, operator, "12 of 12 after web-7 returns", |c| {
        c["applied"] == 12 && c["expected"] == 12
    })
    .await;
    receiver
        .wait("pd", |v| {
            v["event_action"] == "resolve" && v["dedup_key"] == "cutover/fleet/unconfirmed"
        })
        .await;
    let unconfirmed_pages = receiver
        .bodies("pd")
        .iter()
        .filter(|g| {
            serde_json::from_slice::<Value>(&g.body).is_ok_and(|v| {
                v["event_action"] == "trigger" && v["dedup_key"] == "cutover/fleet/unconfirmed"
            })
        })
        .count();
    assert_eq!(unconfirmed_pages, 1, "told once");
    for got in receiver.bodies("pd") {
        events_v2(&serde_json::from_slice(&got.body).unwrap()).unwrap();
    }

    // The kill's record keeps each confirmation, web-7's last (saved within a tick or two).
    let deadline = Instant::now() + Duration::from_secs(15);
    let confirmations = loop {
        let audit: Value = http
            .get(format!("{url}/api/rollouts/fleet/audit"))
            .bearer_auth(operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kill = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"]["action"] == "kill")
            .cloned()
            .expect("a kill entry");
        let list = kill["confirmations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.len() == 12 {
            break list;
        }
        assert!(Instant::now() < deadline, "the kill's record has {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(confirmations.last().unwrap()["instance"], "web-7");
    done.store(true, Ordering::Relaxed);
    for task in fleet {
        let _ = task.await;
    }
}

/// A reader's words are bounded: a bad name or version is a 400 that says why, and a reader
/// that names nothing is served and not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readers_name_and_version_are_checked() {
    let data = tempfile::tempdir().unwrap();
    let app =
        crate::support::TestApp::start(data.path(), vec![crate::support::open_plan("fleet", 2)])
            .await;
    let get = |headers: Vec<(&'static str, String)>| {
        let mut r = app
            .http
            .get(format!("{}/api/rollouts/fleet/flags", app.url))
            .bearer_auth(app.token(cutover_core::role::Role::Flags));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    for (headers, says) in [
        (
            vec![("x-cutover-instance", "a b".to_string())],
            "x-cutover-instance",
        ),
        (
            vec![("x-cutover-instance", "x".repeat(129))],
            "x-cutover-instance",
        ),
        (
            vec![
                ("x-cutover-instance", "web-1".to_string()),
                ("x-cutover-applied", "soon".to_string()),
            ],
            "x-cutover-applied",
        ),
    ] {
        let response = get(headers).await.unwrap();
        assert_eq!(response.status(), 400);
        assert!(response.text().await.unwrap().contains(says));
    }
    assert_eq!(get(vec![]).await.unwrap().status(), 200);
    // A version from the future is not believed.
    let response = get(vec![
        ("x-cutover-instance", "web-1".to_string()),
        ("x-cutover-applied", "999".to_string()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let s = app.get("/api/rollouts/fleet").await;
    assert!(s.get("confirmation").is_none(), "{}", s["confirmation"]);
    let response = get(vec![
        ("x-cutover-instance", "web-1".to_string()),
        ("x-cutover-applied", "0".to_string()),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let s = app.get("/api/rollouts/fleet").await;
    assert_eq!(s["confirmation"]["applied"], 1, "{}", s["confirmation"]);
}

/// A service that reads its flags from a file cannot answer a poll: it reports the version it
/// applied as a metric (`[confirm] metric`), and that confirms the kill like a reader's word.
/// A version not yet published is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_applied_version_confirms_the_kill() {
    use cutover_core::role::Role;
    let plan = cutover_core::plan::parse(
        "m.toml",
        &crate::fixtures::two_stage_plan(
            "pushed",
            "Pushed",
            r#"
[[metric]]
id = "applied_version"
kind = "gauge"

[confirm]
metric = "applied_version"
instance_label = "pod"
"#,
        ),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = crate::support::TestApp::start(data.path(), vec![plan]).await;
    let push = |pod: &str, version: u64| {
        app.http
            .post(format!("{}/api/rollouts/pushed/events", app.url))
            .bearer_auth(app.token(Role::Ingest))
            .body(format!(
                "{{\"labels\":{{\"pod\":\"{pod}\"}},\"values\":{{\"applied_version\":{version}}}}}\n"
            ))
            .send()
    };
    let (status, _) = app
        .post(Some(Role::Lead), "/api/rollouts/pushed/start", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(push("pod-a", 1).await.unwrap().status(), 200);
    assert_eq!(push("pod-b", 1).await.unwrap().status(), 200);
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/pushed/kill",
            json!({"reason": "drill"}),
        )
        .await;
    assert_eq!(status, 200);
    let kill_version = body["state"]["version"].as_u64().unwrap();
    // pod-a says it applied the kill; pod-b names a version from the future.
    assert_eq!(push("pod-a", kill_version).await.unwrap().status(), 200);
    assert_eq!(push("pod-b", kill_version + 5).await.unwrap().status(), 200);
    let c = app
        .wait_for("/api/rollouts/pushed", "pod-a's word counted", |s| {
            let c = &s["confirmation"];
            (c["killed"] == true && c["applied"] == 1).then(|| c.clone())
        })
        .await;
    assert_eq!(c["expected"], 2, "{c}");
    assert_eq!(c["lagging"][0]["instance"], "pod-b", "{c}");
    assert_eq!(c["lagging"][0]["version"], 1, "{c}");
}
