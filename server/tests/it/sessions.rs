//! Browser sessions and share links: a token signs a browser in (HttpOnly, SameSite=Strict
//! cookie), mutations from a cookie need the CSRF header, and a stakeholder link is read-only,
//! limited to its rollout, and dies when revoked.

use crate::support;

use cutover_core::role::Role;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{TestApp, open_plan, spiralogic};

/// The `cutover_session=...` pair from a response's Set-Cookie.
fn session_cookie(response: &reqwest::Response) -> String {
    let header = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    header.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_browser_session_needs_the_csrf_header_to_change_anything() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("csrf", 2)]).await;
    let bad = app
        .http
        .post(format!("{}/api/session", app.url))
        .json(&json!({"token": "cut_nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);

    let signed_in = app
        .http
        .post(format!("{}/api/session", app.url))
        .json(&json!({"token": app.token(Role::Operator)}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 200);
    let cookie = session_cookie(&signed_in);
    let me: Value = signed_in.json().await.unwrap();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("test-operator"), Some("operator"))
    );
    let csrf = me["csrf"].as_str().unwrap().to_string();

    let start = |csrf: Option<&str>| {
        let mut r = app
            .http
            .post(format!("{}/api/rollouts/csrf/start", app.url))
            .header(COOKIE, &cookie);
        if let Some(c) = csrf {
            r = r.header("X-CSRF-Token", c);
        }
        r.send()
    };
    let refused = start(None).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let error: Value = refused.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("CSRF"));
    assert_eq!(start(Some("forged")).await.unwrap().status().as_u16(), 403);
    assert_eq!(start(Some(&csrf)).await.unwrap().status().as_u16(), 200);

    let whoami = app
        .http
        .get(format!("{}/api/session", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.json::<Value>().await.unwrap()["csrf"], csrf.as_str());
    let out = app
        .http
        .delete(format!("{}/api/session", app.url))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let after = app
        .http
        .get(format!("{}/api/rollouts", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status().as_u16(), 401, "signed out");
}

/// Opens a share link as a browser would: the session cookie it sets (after checking it
/// redirects to its rollout's page) and who that session is.
async fn open_share(app: &TestApp, path: &str, rollout: &str) -> (String, Value) {
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened = no_redirects
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status().as_u16(), 303);
    assert_eq!(
        opened.headers()["location"],
        format!("/r/{rollout}").as_str()
    );
    let cookie = session_cookie(&opened);
    let me: Value = app
        .http
        .get(format!("{}/api/session", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (cookie, me)
}

#[tokio::test]
async fn a_share_link_is_read_only_limited_to_its_rollout_and_revocable() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![spiralogic(), open_plan("other", 2)]).await;
    let (status, _) = app
        .post(
            Some(Role::Operator),
            "/api/rollouts/spiralogic/shares",
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "operators cannot create share links");
    let (status, share) = app
        .post(
            Some(Role::Lead),
            "/api/rollouts/spiralogic/shares",
            json!({"expires_in": "72h"}),
        )
        .await;
    assert_eq!(status, 201);
    let (cookie, me) = open_share(&app, share["path"].as_str().unwrap(), "spiralogic").await;
    assert_eq!(
        (me["role"].as_str(), me["rollout"].as_str()),
        (Some("viewer"), Some("spiralogic"))
    );
    let csrf = me["csrf"].as_str().unwrap();
    let get = |path: &str| {
        app.http
            .get(format!("{}{path}", app.url))
            .header(COOKIE, &cookie)
            .send()
    };
    assert_eq!(
        get("/api/rollouts/spiralogic")
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        get("/api/rollouts/other").await.unwrap().status().as_u16(),
        403
    );
    let listed: Value = get("/api/rollouts").await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // A forged POST with the stakeholder's own session and CSRF token is still refused.
    let forged = app
        .http
        .post(format!("{}/api/rollouts/spiralogic/kill", app.url))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", csrf)
        .json(&json!({"reason": "stakeholder click"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);

    // A stakeholder watching live when the link is revoked is cut off too, with a word why.
    let watching = app
        .http
        .get(format!("{}/api/rollouts/spiralogic/stream", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(watching.status().as_u16(), 200);
    let mut watching = support::EventStream::new(watching);
    assert_eq!(watching.next().await.0, "state");

    let revoke = app
        .http
        .delete(format!(
            "{}/api/shares/{}",
            app.url,
            share["id"].as_str().unwrap()
        ))
        .bearer_auth(app.token(Role::Lead))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status().as_u16(), 204);
    assert_eq!(
        get("/api/rollouts/spiralogic")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401,
        "revoked link's session ends"
    );
    let ended = watching.ended_event(Duration::from_secs(12)).await;
    assert!(
        ended["reason"].as_str().unwrap().contains("revoked"),
        "{ended}"
    );
    let reopened = app.get_as(None, share["path"].as_str().unwrap()).await;
    assert_eq!(reopened.status().as_u16(), 404);
}

#[tokio::test]
async fn pages_carry_a_csp_that_allows_the_wasm_app_and_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("csp", 2)]).await;
    let page = app
        .http
        .get(format!("{}/r/csp", app.url))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
}

/// Even a plan that grants `viewer` the kill switch (one `plan check` refuses, built here by
/// hand) cannot make a share link mutate: the link is read-only whatever the plan says.
#[tokio::test]
async fn a_share_link_cannot_kill_even_when_the_plan_lets_viewers_kill() {
    let data = tempfile::tempdir().unwrap();
    let mut plan = open_plan("lax", 2);
    plan.permissions.kill.push(Role::Viewer);
    plan.permissions.check.push(Role::Viewer);
    let app = TestApp::start(data.path(), vec![plan]).await;
    let (status, _) = app
        .post(Some(Role::Operator), "/api/rollouts/lax/start", json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, share) = app
        .post(Some(Role::Lead), "/api/rollouts/lax/shares", json!({}))
        .await;
    let (cookie, me) = open_share(&app, share["path"].as_str().unwrap(), "lax").await;
    let csrf = me["csrf"].as_str().unwrap();
    let kill = app
        .http
        .post(format!("{}/api/rollouts/lax/kill", app.url))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", csrf)
        .json(&json!({"reason": "stakeholder click"}))
        .send()
        .await
        .unwrap();
    assert_eq!(kill.status().as_u16(), 403);
    let body: Value = kill.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
    assert_eq!(
        app.get("/api/rollouts/lax").await["state"]["phase"],
        "running"
    );
    // A viewer's own token is not a share link: the plan's grant applies to it.
    let (status, _) = app
        .post(
            Some(Role::Viewer),
            "/api/rollouts/lax/kill",
            json!({"reason": "drill"}),
        )
        .await;
    assert_eq!(status, 200);
    // Signing out is still allowed to the link's session.
    let out = app
        .http
        .delete(format!("{}/api/session", app.url))
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
}

/// Behind HTTPS (`--public-url https://...`) the session cookie is `__Host-` prefixed and
/// `Secure`, every answer carries HSTS, and the cookie signs the browser in as before. API
/// answers are never cached, and no page may use the camera, microphone or location.
#[tokio::test]
async fn behind_https_the_cookie_is_host_only_and_secure_and_hsts_is_sent() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start_public(
        data.path(),
        vec![open_plan("tls", 2)],
        "https://cutover.example.com",
    )
    .await;
    let signed_in = app
        .http
        .post(format!("{}/api/session", app.url))
        .json(&json!({ "token": app.token(Role::Viewer) }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 200);
    let set = signed_in.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.starts_with("__Host-cutover_session=")
            && set.contains("; Secure")
            && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Domain="), "{set}");
    assert_eq!(
        signed_in.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(signed_in.headers()["cache-control"], "no-store");
    assert!(
        signed_in.headers()["permissions-policy"]
            .to_str()
            .unwrap()
            .contains("camera=()")
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let me = app
        .http
        .get(format!("{}/api/session", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);

    // Plain HTTP (the demo) keeps the plain cookie and sends no HSTS.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = TestApp::start(plain_dir.path(), vec![open_plan("plain", 2)]).await;
    let page = plain.get_as(None, "/").await;
    assert!(page.headers().get("strict-transport-security").is_none());
    plain.stop().await;
    app.stop().await;
}

/// Asking who is signed in without a session is not an error (a first visit): 204. A session
/// that has ended is: 401.
#[tokio::test]
async fn no_session_is_204_and_an_ended_one_is_401() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("open", 2)]).await;
    let first = app
        .http
        .get(format!("{}/api/session", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 204);
    let ended = app
        .http
        .get(format!("{}/api/session", app.url))
        .header(COOKIE, "cutover_session=0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status().as_u16(), 401);
    app.stop().await;
}

/// Open streams are checked again once per sign-in, not once per stream: revoking one user
/// ends each of that user's streams, on every rollout, and no one else's.
#[tokio::test]
async fn a_revoked_user_loses_each_of_its_streams_and_no_one_else_does() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![open_plan("one", 2), open_plan("two", 2)]).await;
    let open = |rollout: &'static str, role: Role| {
        let request = app
            .http
            .get(format!("{}/api/rollouts/{rollout}/stream", app.url))
            .bearer_auth(app.token(role));
        async move { support::EventStream::new(request.send().await.unwrap()) }
    };
    let mut revoked = vec![
        open("one", Role::Operator).await,
        open("one", Role::Operator).await,
        open("two", Role::Operator).await,
    ];
    let mut kept = open("one", Role::Viewer).await;
    for stream in revoked.iter_mut().chain([&mut kept]) {
        assert_eq!(stream.next().await.0, "state");
    }

    let storage = cutover_server::store::Storage::open_sqlite(data.path())
        .await
        .unwrap();
    assert!(storage.revoke_user("test-operator").await.unwrap());
    for stream in &mut revoked {
        let ended = stream.ended_event(Duration::from_secs(12)).await;
        assert!(
            ended["reason"].as_str().unwrap().contains("revoked"),
            "{ended}"
        );
        assert!(stream.ended().await, "closed after saying why");
    }
    // The viewer's stream goes on past the check that ended the others.
    let until = Instant::now() + cutover_server::runtime::viewers::RECHECK;
    while Instant::now() < until {
        let (name, _) = kept.next().await;
        assert_ne!(name, "ended", "the viewer was never revoked");
    }
    storage.close().await;
    app.stop().await;
}
