//! Receivers cannot hurt the server or lie to it: a redirect is a failure that names where it
//! pointed (never followed, so a sign-in page's 200 cannot mark a kill applied), a gigabyte
//! answer is read a few KB and dropped, a receiver's own words reach operators and leads only,
//! and loopback, private and metadata addresses are refused unless the plan allows them.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use cutover_core::role::Role;
use serde_json::{Value, json};
use support::TestApp;

/// How the test receiver answers each call.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 302 to `/login`, which answers 200 (a sign-in page).
    Redirect,
    /// 500 with a body of 1 GiB, made as it is read.
    Gigabyte,
    /// 503 with a body naming an internal host.
    Secret,
}

/// Calls to the hook, calls to the sign-in page, bytes of the big body handed to the socket.
#[derive(Default)]
struct Seen {
    hook: AtomicUsize,
    login: AtomicUsize,
    streamed: AtomicU64,
}

const SECRET: &str = "db-primary.internal.example:5432 refused; trace id 7f3a";

async fn receiver(behaviour: Behaviour) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let (on_hook, on_login) = (seen.clone(), seen.clone());
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move || {
                let seen = on_hook.clone();
                async move {
                    seen.hook.fetch_add(1, Ordering::SeqCst);
                    match behaviour {
                        Behaviour::Redirect => {
                            (StatusCode::FOUND, [(header::LOCATION, "/login")]).into_response()
                        }
                        Behaviour::Secret => {
                            (StatusCode::SERVICE_UNAVAILABLE, SECRET).into_response()
                        }
                        Behaviour::Gigabyte => {
                            let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                            let counter = seen.clone();
                            let body = futures::stream::iter(0..16_384).map(move |_| {
                                counter.streamed.fetch_add(64 * 1024, Ordering::SeqCst);
                                Ok::<_, std::io::Error>(chunk.clone())
                            });
                            (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                axum::body::Body::from_stream(body),
                            )
                                .into_response()
                        }
                    }
                }
            }),
        )
        .route(
            "/login",
            axum::routing::any(move || {
                let seen = on_login.clone();
                async move {
                    seen.login.fetch_add(1, Ordering::SeqCst);
                    "<html>Sign in</html>"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

use futures::StreamExt;

fn plan(hook: &str, allow_private: bool) -> cutover_core::plan::Plan {
    let text = crate::fixtures::two_stage_plan(
        "recv",
        "Receivers",
        &format!(
            r#"
[[actuator]]
id = "hook"
kind = "webhook"
url = "{hook}"
allow_private = {allow_private}

[[notify]]
id = "room"
kind = "webhook"
url = "{hook}"
allow_private = {allow_private}
"#
        ),
    );
    cutover_core::plan::parse("recv.toml", &text).unwrap()
}

/// Waits until the hook actuator has failed at least `attempts` times; returns its status.
async fn failed(app: &TestApp, attempts: u64) -> Value {
    app.wait_for("/api/rollouts/recv", "the hook failed", |s| {
        let a = s["actuators"]
            .as_array()?
            .iter()
            .find(|a| a["id"] == "hook")?;
        (a["state"] == "failed" && a["attempts"].as_u64()? >= attempts).then(|| a.clone())
    })
    .await
}

#[tokio::test]
async fn a_redirect_is_a_failure_naming_where_it_pointed_and_is_never_followed() {
    let data = tempfile::tempdir().unwrap();
    let (hook, seen) = receiver(Behaviour::Redirect).await;
    let app = TestApp::start(data.path(), vec![plan(&hook, true)]).await;
    let (status, body) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/recv/kill",
            json!({"reason": "drill"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let status = failed(&app, 2).await;
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("302") && error.contains("/login"), "{error}");
    assert!(seen.hook.load(Ordering::SeqCst) >= 2);
    assert_eq!(
        seen.login.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_gigabyte_answer_is_read_a_few_kilobytes_and_dropped() {
    let data = tempfile::tempdir().unwrap();
    let (hook, seen) = receiver(Behaviour::Gigabyte).await;
    let app = TestApp::start(data.path(), vec![plan(&hook, true)]).await;
    failed(&app, 3).await;
    // Three answers of a gigabyte each were offered; what left the receiver is what the
    // sockets' buffers took before the server closed the connection.
    let streamed = seen.streamed.load(Ordering::SeqCst);
    assert!(
        streamed < 3 * 32 * 1024 * 1024,
        "{} MiB of the answers were read",
        streamed >> 20
    );
    let receivers = app
        .get_as(Some(Role::Operator), "/api/rollouts/recv/receivers")
        .await;
    let receivers: Value = receivers.json().await.unwrap();
    let answer = receivers["actuators"][0]["answer"].as_str().unwrap();
    assert!(
        answer.len() <= 4096 && answer.starts_with("xxxx"),
        "{}",
        answer.len()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_receivers_words_reach_operators_and_never_viewers_or_share_links() {
    let data = tempfile::tempdir().unwrap();
    let (hook, _) = receiver(Behaviour::Secret).await;
    let app = TestApp::start(data.path(), vec![plan(&hook, true)]).await;
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/recv/kill",
            json!({"reason": "drill"}),
        )
        .await;
    assert_eq!(status, 200);
    let status = failed(&app, 1).await;
    assert_eq!(
        status["error"],
        "the webhook answered 503 Service Unavailable"
    );
    // The channel fails the same way (the kill is told).
    let snapshot = app
        .wait_for("/api/rollouts/recv", "the channel failed", |s| {
            let c = &s["channels"].as_array()?.first()?.clone();
            c["error"].is_string().then(|| s.clone())
        })
        .await;
    assert!(
        !snapshot.to_string().contains("internal.example"),
        "{snapshot}"
    );
    for role in [Role::Viewer, Role::Product] {
        let refused = app.get_as(Some(role), "/api/rollouts/recv/receivers").await;
        assert_eq!(refused.status(), 403, "{role}");
    }
    for role in [Role::Operator, Role::Lead] {
        let answer: Value = app
            .get_as(Some(role), "/api/rollouts/recv/receivers")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["actuators"][0]["answer"], SECRET, "{role}: {answer}");
        assert_eq!(answer["channels"][0]["answer"], SECRET, "{role}: {answer}");
    }
    app.stop().await;
}

#[tokio::test]
async fn loopback_receivers_are_refused_unless_the_plan_allows_them() {
    let data = tempfile::tempdir().unwrap();
    let (hook, seen) = receiver(Behaviour::Secret).await;
    // By name as well as by address: `localhost` resolves to loopback.
    let by_name = hook.replace("127.0.0.1", "localhost");
    for url in [&hook, &by_name] {
        let app = TestApp::start(data.path(), vec![plan(url, false)]).await;
        let status = failed(&app, 1).await;
        let error = status["error"].as_str().unwrap();
        assert!(
            error.contains("a loopback address") && error.contains("allow_private"),
            "{url}: {error}"
        );
        app.stop().await;
    }
    assert_eq!(
        seen.hook.load(Ordering::SeqCst),
        0,
        "a refused receiver was called"
    );
}
