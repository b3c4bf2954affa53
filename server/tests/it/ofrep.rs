//! OpenFeature out, through the real server, evaluated by the official OpenFeature Rust SDK
//! with its OFREP provider (`open-feature`, `open-feature-ofrep`), unchanged: 10,000 users'
//! membership is stable over 5 → 25 → 100 %, a kill is seen at the next evaluation, and the
//! bulk endpoint answers 304 while nothing changed.

use crate::support::TestApp;

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use cutover_core::plan::Plan;
use cutover_core::role::Role;
use futures::StreamExt;
use open_feature::provider::FeatureProvider;
use open_feature::{EvaluationContext, EvaluationErrorCode, OpenFeature};
use open_feature_ofrep::{OfrepOptions, OfrepProvider};
use serde_json::{Value, json};

fn plan() -> Plan {
    let text = r#"
[rollout]
id = "search"
title = "Search v2"

[rollback]
flags = { SEARCH_V2 = false, BATCH = 10, ENGINE = "classic" }

[[stage]]
id = "five"
traffic = 5
flags = { SEARCH_V2 = true, BATCH = 50, ENGINE = "vector" }

[[stage]]
id = "quarter"
traffic = 25
flags = { SEARCH_V2 = true, BATCH = 50, ENGINE = "vector" }

[[stage]]
id = "all"
traffic = 100
flags = { SEARCH_V2 = true, BATCH = 50, ENGINE = "vector" }

[[metric]]
id = "reads"
kind = "counter"
"#;
    cutover_core::plan::parse("search.toml", text).unwrap()
}

async fn provider(app: &TestApp, base: String, role: Role) -> OfrepProvider {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", app.token(role))).unwrap(),
    );
    OfrepProvider::new(OfrepOptions {
        base_url: base,
        headers,
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .await
    .expect("a provider")
}

/// Who of `users` gets the new path now, as the SDK evaluates `SEARCH_V2` for each.
async fn inside(client: &open_feature::Client, users: &[String]) -> Vec<bool> {
    futures::stream::iter(users)
        .map(|u| async move {
            let context = EvaluationContext::default().with_targeting_key(u.as_str());
            tokio::time::timeout(
                Duration::from_secs(10),
                client.get_bool_value("SEARCH_V2", Some(&context), None),
            )
            .await
            .expect("an answer in time")
            .expect("an evaluation")
        })
        .buffered(32)
        .collect()
        .await
}

async fn act(app: &TestApp, action: &str) {
    let (status, body) = app
        .post(
            Some(Role::Lead),
            &format!("/api/rollouts/search/{action}"),
            json!({ "reason": "test" }),
        )
        .await;
    assert_eq!(status, 200, "{action}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_provider_sees_stable_membership_and_the_kill() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    // A service holds a flags token: it reads flags and nothing else.
    let flags = provider(&app, app.url.clone(), Role::Flags).await;
    {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_named_provider("cutover-search", flags).await;
    }
    let client = OpenFeature::singleton()
        .await
        .create_named_client("cutover-search");
    let users: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();

    act(&app, "start").await;
    let at5 = inside(&client, &users).await;
    act(&app, "progress").await;
    let at25 = inside(&client, &users).await;
    act(&app, "progress").await;
    let at100 = inside(&client, &users).await;
    let share = |v: &[bool]| v.iter().filter(|b| **b).count() as f64 / 100.0;
    assert!((share(&at5) - 5.0).abs() <= 1.0, "5%: {}", share(&at5));
    assert!((share(&at25) - 25.0).abs() <= 1.0, "25%: {}", share(&at25));
    assert_eq!(share(&at100), 100.0);
    for (i, u) in users.iter().enumerate() {
        assert!(!at5[i] || at25[i], "{u} was in at 5% and out at 25%");
    }

    // Typed flags come through as their types, the stage as the variant.
    let context = EvaluationContext::default().with_targeting_key("user-1");
    assert_eq!(
        client
            .get_int_value("BATCH", Some(&context), None)
            .await
            .unwrap(),
        50
    );
    let engine = client
        .get_string_details("ENGINE", Some(&context), None)
        .await
        .unwrap();
    assert_eq!(
        (engine.value.as_str(), engine.variant.as_deref()),
        ("vector", Some("all"))
    );
    let missing = client
        .get_bool_value("NOPE", Some(&context), None)
        .await
        .unwrap_err();
    assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);

    // The kill: the very next evaluation is the rollback value.
    let started = Instant::now();
    act(&app, "kill").await;
    let after = client
        .get_bool_value("SEARCH_V2", Some(&context), None)
        .await
        .unwrap();
    let seen_in = started.elapsed();
    assert!(!after, "a kill is seen at the next evaluation");
    assert_eq!(
        client
            .get_int_value("BATCH", Some(&context), None)
            .await
            .unwrap(),
        10
    );
    assert!(inside(&client, &users[..500]).await.iter().all(|b| !b));
    println!("kill → flag seen by an OFREP client: {seen_in:?}");

    // The flags token may not read the dashboard, nor open it in a browser.
    let r = app.get_as(Some(Role::Flags), "/api/rollouts/search").await;
    assert_eq!(r.status(), 403);
    let r = app
        .http
        .post(format!("{}/api/session", app.url))
        .json(&json!({ "token": app.token(Role::Flags) }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("flags token"));
}

async fn bulk(app: &TestApp, path: &str, body: Value, etag: Option<&str>) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}{path}", app.url))
        .bearer_auth(app.token(Role::Flags))
        .json(&body);
    if let Some(etag) = etag {
        r = r.header("if-none-match", etag);
    }
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_evaluation_answers_304_until_something_changes() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    act(&app, "start").await;
    let path = "/api/rollouts/search/ofrep/v1/evaluate/flags";
    let context = json!({ "context": { "targetingKey": "user-7" } });
    let first = bulk(&app, path, context.clone(), None).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = first.json().await.unwrap();
    let keys: Vec<&str> = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["BATCH", "ENGINE", "SEARCH_V2"]);

    let again = bulk(&app, path, context.clone(), Some(&etag)).await;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    // The root path reads every rollout the token may see: the same answer here.
    let root = bulk(
        &app,
        "/ofrep/v1/evaluate/flags",
        context.clone(),
        Some(&etag),
    )
    .await;
    assert_eq!(root.status(), 304);

    act(&app, "kill").await;
    let changed = bulk(&app, path, context.clone(), Some(&etag)).await;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    for flag in body["flags"].as_array().unwrap() {
        assert_eq!(flag["reason"], "DISABLED", "{flag}");
    }

    // A request that is not an evaluation: the protocol's error shape.
    let r = app
        .http
        .post(format!("{}{path}/SEARCH_V2", app.url))
        .bearer_auth(app.token(Role::Flags))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "PARSE_ERROR");
    // Mid-rollout, a user must be named.
    act(&app, "resume").await;
    let r = bulk(&app, path, json!({ "context": {} }), None).await;
    let body: Value = r.json().await.unwrap();
    assert!(
        body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["errorCode"] == "TARGETING_KEY_MISSING"),
        "{body}"
    );
    // Without a token: 401.
    let r = app
        .http
        .post(format!("{}{path}", app.url))
        .json(&context)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The provider straight, as a service's SDK calls it, against one rollout's base URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_base_url_serves_that_rollouts_flags() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let p = provider(
        &app,
        format!("{}/api/rollouts/search", app.url),
        Role::Viewer,
    )
    .await;
    let context = EvaluationContext::default().with_targeting_key("someone");
    // Not started: the value to return to.
    let e = p.resolve_string_value("ENGINE", &context).await.unwrap();
    assert_eq!(
        (e.value.as_str(), e.variant.as_deref()),
        ("classic", Some("baseline"))
    );
    // `/flags`, which services poll, writes numbers as OFREP does: whole ones as integers (a
    // typed reader refuses `50.0` for an int), the traffic too.
    act(&app, "start").await;
    let flags = app.get_as(Some(Role::Viewer), "/api/rollouts/search/flags");
    let body = cutover_server::net::read_bounded(flags.await, crate::support::ANSWER_LIMIT);
    let text = String::from_utf8(body.await.unwrap()).unwrap();
    assert!(text.contains("\"BATCH\":50,"), "{text}");
    assert!(text.contains("\"traffic\":5,"), "{text}");
    let answer = bulk(
        &app,
        "/api/rollouts/search/ofrep/v1/evaluate/flags",
        json!({"context": {"targetingKey": "someone"}}),
        None,
    );
    let body = cutover_server::net::read_bounded(answer.await, crate::support::ANSWER_LIMIT);
    let bulk: Value = serde_json::from_slice(&body.await.unwrap()).unwrap();
    let batch = bulk["flags"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["key"] == "BATCH"))
        .map(|f| f["value"].to_string());
    assert!(
        matches!(batch.as_deref(), Some("50") | Some("10")),
        "{bulk}"
    );
}
