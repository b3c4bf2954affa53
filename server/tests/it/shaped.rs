//! Actuators that speak the service's API: a webhook shaped by the plan (method, URL and body
//! templates, one call per changed flag, a header whose secret comes from the environment)
//! drives a flag service's REST API on loopback through the real binary. Only changed flags
//! are sent; a flag the service refuses is retried alone until it takes it; the kill's
//! rollback arrives flag by flag; the service is counted among those that applied it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use crate::notify::serve;

/// One call the service got: method, flag, API key, body.
type Got = (Method, String, Option<String>, Value);

/// A flag service: `PATCH /api/flags/{key}` with `{"value": ...}` and its API key.
#[derive(Clone, Default)]
struct FlagService {
    calls: Arc<Mutex<Vec<Got>>>,
    /// Flags refused once (a 500), then taken.
    refuse_once: Arc<Mutex<Vec<String>>>,
}

async fn patch(
    State(s): State<FlagService>,
    method: Method,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    s.calls
        .lock()
        .unwrap()
        .push((method, key.clone(), api_key, body));
    let mut refuse = s.refuse_once.lock().unwrap();
    if let Some(i) = refuse.iter().position(|k| *k == key) {
        refuse.remove(i);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

impl FlagService {
    async fn start() -> (FlagService, String) {
        let s = FlagService::default();
        let app = axum::Router::new()
            .route("/api/flags/{key}", axum::routing::patch(patch))
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (s, base)
    }

    fn calls(&self) -> Vec<Got> {
        self.calls.lock().unwrap().clone()
    }

    /// The value each flag was last set to, from the calls that carried one.
    fn values(&self) -> BTreeMap<String, Value> {
        self.calls()
            .into_iter()
            .map(|(_, k, _, b)| (k, b["value"].clone()))
            .collect()
    }

    async fn wait(&self, what: &str, check: impl Fn(&BTreeMap<String, Value>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check(&self.values()) {
            assert!(
                Instant::now() < deadline,
                "never {what}: {:?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shaped_webhook_sets_each_changed_flag_through_the_services_api() {
    let (service, base) = FlagService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let plan = format!(
        r#"
[rollout]
id = "shaped"
title = "Shaped"

[rollback]
flags = {{ SEARCH_V2 = false, ENGINE = "classic" }}

[[stage]]
id = "canary"
traffic = 10
flags = {{ SEARCH_V2 = true, ENGINE = "vector", BATCH = 50 }}

[[stage]]
id = "ga"
traffic = 100
flags = {{ SEARCH_V2 = true, ENGINE = "vector", BATCH = 100 }}

[[metric]]
id = "latency_ms"
kind = "distribution"

[[actuator]]
id = "flagsvc"
kind = "webhook"
url = "{base}/api/flags/{{{{ flag | segment }}}}"
method = "PATCH"
per_flag = true
body = '{{"value": {{{{ value | tojson }}}}, "comment": {{{{ ("cutover " ~ rollout ~ " v" ~ version) | tojson }}}}}}'
headers_env = {{ "X-Api-Key" = "DRILL_HMAC" }}
allow_private = true
"#
    );
    std::fs::write(plans.path().join("shaped.toml"), plan).unwrap();
    let (_child, url, tokens) = serve(dir.path(), plans.path()).await;
    let (operator, _) = tokens.split_once('\n').unwrap();
    let http = crate::support::http();
    let act = |path: &str| {
        http.post(format!("{url}/api/rollouts/shaped/{path}"))
            .bearer_auth(operator)
            .json(&json!({ "reason": "drill" }))
            .send()
    };

    // The canary's three flags, one PATCH each, with the key from the environment; ENGINE
    // is refused once and sent again alone.
    service.refuse_once.lock().unwrap().push("ENGINE".into());
    assert_eq!(act("start").await.unwrap().status(), 200);
    service
        .wait("the canary's flags", |v| {
            v.get("SEARCH_V2") == Some(&json!(true))
                && v.get("ENGINE") == Some(&json!("vector"))
                && v.get("BATCH") == Some(&json!(50))
        })
        .await;
    let calls = service.calls();
    assert!(
        calls
            .iter()
            .all(|(m, _, key, _)| m == Method::PATCH && key.as_deref() == Some("drill-secret"))
    );
    let count = |flag: &str| calls.iter().filter(|(_, k, _, _)| k == flag).count();
    assert_eq!(
        (count("SEARCH_V2"), count("ENGINE"), count("BATCH")),
        (1, 2, 1),
        "a retry sends only the refused flag: {calls:?}"
    );
    assert!(
        calls[0].3["comment"]
            .as_str()
            .unwrap()
            .starts_with("cutover shaped v")
    );

    // To ga: only BATCH changes.
    let before = service.calls().len();
    assert_eq!(act("progress").await.unwrap().status(), 200);
    service
        .wait("ga's batch", |v| v.get("BATCH") == Some(&json!(100)))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new: Vec<String> = service.calls()[before..]
        .iter()
        .map(|(_, k, _, _)| k.clone())
        .collect();
    assert_eq!(new, ["BATCH"], "unchanged flags are not sent again");

    // The kill: SEARCH_V2 and ENGINE to their rollback values, BATCH no longer published.
    assert_eq!(act("kill").await.unwrap().status(), 200);
    service
        .wait("the rollback", |v| {
            v.get("SEARCH_V2") == Some(&json!(false))
                && v.get("ENGINE") == Some(&json!("classic"))
                && v.get("BATCH") == Some(&Value::Null)
        })
        .await;
    // The service is one of those that applied the kill.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s: Value = http
            .get(format!("{url}/api/rollouts/shaped"))
            .bearer_auth(operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let c = &s["confirmation"];
        if c["killed"] == true && c["applied"] == 1 && c["expected"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A template mistake is a plan error with its place, before anything runs.
#[test]
fn a_template_mistake_is_a_plan_error() {
    let text = crate::fixtures::two_stage_plan(
        "bad",
        "Bad",
        r#"
[[actuator]]
id = "flagsvc"
kind = "webhook"
url = "https://flags.example/api/flags/{{ flag }}"
method = "GET"
body = '{"value": {{ valu | tojson }}}'
per_flag = true
"#,
    );
    let errors: Vec<String> = cutover_core::plan::parse("bad.toml", &text)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("method \"GET\"")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("actuator flagsvc: body") && e.contains("undefined")),
        "{errors:?}"
    );
}
