//! Single sign-on through a real OpenID provider (`oidc-provider` from npm) on loopback: a
//! person signs in, holds the roles their groups map to, acts under their own name and
//! email; people in no mapped group, off-site return paths, foreign or replayed states, a
//! rotated key, a provider that stops mid-flow and a group removed between sessions are each
//! handled as the issue names.

use crate::oidc::{self, Provider};
use crate::support::TestApp;

use std::time::Duration;

use cutover_core::role::Role;
use cutover_server::sso::Settings;
use serde_json::{Value, json};

fn settings(issuer: &str, lifetime_ms: i64) -> Settings {
    Settings {
        issuer: issuer.to_string(),
        name: "Test SSO".into(),
        client_id: oidc::CLIENT_ID.into(),
        client_secret: oidc::CLIENT_SECRET.into(),
        scopes: ["openid", "email", "profile", "groups"]
            .map(String::from)
            .to_vec(),
        groups_claim: "groups".into(),
        email_domains: vec!["example.test".into()],
        session_lifetime: lifetime_ms,
        contact: Some("#cutover-admins".into()),
        default_roles: Vec::new(),
        groups: [
            ("launch-leads".to_string(), vec![Role::Lead]),
            ("sre".to_string(), vec![Role::Operator]),
        ]
        .into_iter()
        .collect(),
        redirect_url: None,
        jwks_refresh: Duration::ZERO,
    }
}

/// The settings the other single sign-on tests start from.
pub fn tests_settings(issuer: &str) -> Settings {
    settings(issuer, cutover_core::time::HOUR)
}

fn people() -> Value {
    json!({
        "alice": oidc::user("Alice Liddell", "alice@example.test", &["launch-leads", "sre"]),
        "bob": oidc::user("Bob Builder", "bob@example.test", &["staff"]),
        "carol": oidc::user("Carol Ops", "carol@example.test", &["sre"]),
        "mallory": oidc::user("Mallory", "mallory@elsewhere.test", &["launch-leads"]),
    })
}

async fn start(lifetime_ms: i64) -> (TestApp, Provider, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let (app, provider) = TestApp::start_with_sso(
        data.path(),
        vec![crate::support::open_plan("open", 2)],
        |url| async move {
            let provider = Provider::start(&format!("{url}/auth/sso/callback"), people()).await;
            (settings(&provider.issuer, lifetime_ms), provider)
        },
    )
    .await;
    (app, provider, data)
}

/// The signed-in session as the app asks it.
async fn whoami(app: &TestApp, browser: &reqwest::Client) -> Value {
    let r = browser
        .get(format!("{}/api/session", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_person_signs_in_with_their_groups_roles_and_acts_under_their_own_name() {
    let (app, _provider, _data) = start(cutover_core::time::HOUR).await;
    // The sign-in page's question: is SSO offered, by what name?
    let offered: Value = app.get("/api/sso").await;
    assert_eq!(offered["name"], "Test SSO");

    let browser = oidc::browser();
    let done = oidc::sign_in(&browser, &app.url, "/r/open", "alice").await;
    assert_eq!(done.status(), 200);
    let page = done.text().await.unwrap();
    assert!(page.contains("Signed in as Alice Liddell"), "{page}");
    assert!(
        page.contains("url=/r/open"),
        "returns where it started: {page}"
    );

    let me = whoami(&app, &browser).await;
    assert_eq!(me["name"], "Alice Liddell");
    assert_eq!(me["role"], "lead", "the highest of lead and operator: {me}");

    // Acts (a session sends its CSRF token), and the record names the person.
    let r = browser
        .post(format!("{}/api/rollouts/open/pause", app.url))
        .header("x-csrf-token", me["csrf"].as_str().unwrap())
        .json(&json!({ "reason": "checking the canary" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        409,
        "not started yet: refused by the state, not the role"
    );
    let r = browser
        .post(format!("{}/api/rollouts/open/start", app.url))
        .header("x-csrf-token", me["csrf"].as_str().unwrap())
        .json(&json!({ "reason": "go" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let audit: Value = app.get("/api/rollouts/open/audit").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["actor"]["name"], "Alice Liddell", "{entry}");
    assert_eq!(entry["actor"]["email"], "alice@example.test");
    assert_eq!(entry["actor"]["person"], "sso:alice");
}

#[tokio::test]
async fn people_outside_the_mapped_groups_or_domains_are_told_why_and_whom_to_ask() {
    let (app, _provider, _data) = start(cutover_core::time::HOUR).await;
    let r = oidc::sign_in(&oidc::browser(), &app.url, "/", "bob").await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Bob Builder is in no group that cutover gives a role to"),
        "{page}"
    );
    assert!(
        page.contains("staff") && page.contains("#cutover-admins"),
        "{page}"
    );

    let r = oidc::sign_in(&oidc::browser(), &app.url, "/", "mallory").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("example.test"));
}

#[tokio::test]
async fn an_off_site_return_to_lands_on_the_overview() {
    let (app, _provider, _data) = start(cutover_core::time::HOUR).await;
    for evil in ["https://evil.example/", "//evil.example/x"] {
        let r = oidc::sign_in(&oidc::browser(), &app.url, evil, "carol").await;
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("url=/\""), "{evil}: {page}");
        assert!(!page.contains("evil.example"), "{page}");
    }
}

#[tokio::test]
async fn a_foreign_state_or_a_replayed_callback_is_refused() {
    let (app, _provider, _data) = start(cutover_core::time::HOUR).await;
    // Another browser's callback: the state is not this browser's.
    let victim = oidc::browser();
    let at = oidc::walk_to_callback(&victim, &app.url, "/", "carol").await;
    let attacker = oidc::browser();
    let r = attacker.get(&at.url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("did not start in this browser")
    );
    // The right browser gets in once; the same callback again is refused.
    let r = victim.get(&at.url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let replay = victim.get(&at.url).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    // A state with a made-up value.
    let forged = at.url.replace("state=", "state=x");
    let r = victim.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_key_rotated_at_the_provider_is_fetched_and_trusted() {
    let (app, provider, _data) = start(cutover_core::time::HOUR).await;
    let r = oidc::sign_in(&oidc::browser(), &app.url, "/", "carol").await;
    assert_eq!(r.status(), 200);
    // The old key is gone from the provider's set; the next token is signed with a new one.
    provider.rotate(false).await;
    let browser = oidc::browser();
    let r = oidc::sign_in(&browser, &app.url, "/", "carol").await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(whoami(&app, &browser).await["role"], "operator");
}

#[tokio::test]
async fn a_provider_that_stops_mid_flow_is_said_plainly() {
    let (app, mut provider, _data) = start(cutover_core::time::HOUR).await;
    let browser = oidc::browser();
    let at = oidc::walk_to_callback(&browser, &app.url, "/", "carol").await;
    provider.stop().await;
    let r = browser.get(&at.url).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("did not answer"));
}

#[tokio::test]
async fn a_group_removed_at_the_provider_takes_the_role_at_the_next_session() {
    // Sessions last two seconds here.
    let (app, provider, _data) = start(2_000).await;
    let browser = oidc::browser();
    assert_eq!(
        oidc::sign_in(&browser, &app.url, "/", "alice")
            .await
            .status(),
        200
    );
    assert_eq!(whoami(&app, &browser).await["role"], "lead");
    provider
        .set_user(
            "alice",
            oidc::user("Alice Liddell", "alice@example.test", &["sre"]),
        )
        .await;
    // Until the session ends she keeps it; then it is gone, and the next sign-in reads her
    // groups again.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let r = browser
        .get(format!("{}/api/session", app.url))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200, "the session has ended");
    let r = browser
        .get(format!("{}/api/rollouts", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let again = oidc::browser();
    assert_eq!(
        oidc::sign_in(&again, &app.url, "/", "alice").await.status(),
        200
    );
    assert_eq!(whoami(&app, &again).await["role"], "operator");
}

#[tokio::test]
async fn a_revoked_person_is_refused_whatever_the_provider_says() {
    let (app, _provider, data) = start(cutover_core::time::HOUR).await;
    let browser = oidc::browser();
    assert_eq!(
        oidc::sign_in(&browser, &app.url, "/", "carol")
            .await
            .status(),
        200
    );
    // The admin's view and action, through the CLI on the server's data.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["user"])
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, listed) = cli(&["list"]);
    assert!(ok);
    let line = listed
        .lines()
        .find(|l| l.contains("Carol Ops"))
        .expect("Carol is listed");
    assert!(
        line.contains("operator")
            && line.contains("sso carol")
            && line.contains("<carol@example.test>")
            && line.contains("groups sre")
            && line.contains("last sign-in"),
        "{line}"
    );
    let (ok, said) = cli(&["revoke", "carol@example.test"]);
    assert!(ok, "{said}");
    assert!(said.contains("revoked"), "{said}");
    assert!(cli(&["list"]).1.contains("REVOKED"));
    // Her session ends at once, and the provider's word no longer lets her in.
    let r = browser
        .get(format!("{}/api/session", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = oidc::sign_in(&oidc::browser(), &app.url, "/", "carol").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("revoked"));
    // Restored, she is let in again.
    assert!(cli(&["restore", "carol"]).0);
    let r = oidc::sign_in(&oidc::browser(), &app.url, "/", "carol").await;
    assert_eq!(r.status(), 200);
}

/// A sign-off needing two people is not met by one person twice: once through single
/// sign-on and once with a token bound to the same email (`user add --email`).
#[tokio::test]
async fn one_person_through_a_token_and_a_session_signs_off_once() {
    let data = tempfile::tempdir().unwrap();
    let plan = cutover_core::plan::parse(
        "two.toml",
        "[rollout]\nid = \"two\"\ntitle = \"Two people\"\n\n[[stage]]\nid = \"canary\"\ntraffic = 5\n\n\
         [[stage]]\nid = \"ga\"\ntraffic = 100\n\n[[signoff]]\nstage = \"ga\"\napprovals = 2\nroles = [\"lead\"]\n\n\
         [[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n",
    )
    .unwrap();
    let (app, _provider) = TestApp::start_with_sso(data.path(), vec![plan], |url| async move {
        let provider = Provider::start(&format!("{url}/auth/sso/callback"), people()).await;
        (
            settings(&provider.issuer, cutover_core::time::HOUR),
            provider,
        )
    })
    .await;
    let browser = oidc::browser();
    assert_eq!(
        oidc::sign_in(&browser, &app.url, "/", "alice")
            .await
            .status(),
        200
    );
    let me = whoami(&app, &browser).await;
    let csrf = me["csrf"].as_str().unwrap().to_string();
    let act = |path: &'static str| {
        browser
            .post(format!("{}/api/rollouts/two/{path}", app.url))
            .header("x-csrf-token", &csrf)
            .json(&json!({ "reason": "ok" }))
    };
    assert_eq!(act("start").send().await.unwrap().status(), 200);
    assert_eq!(act("approvals").send().await.unwrap().status(), 200);

    // Alice's token, bound to her email, is Alice.
    let storage = cutover_server::store::Storage::open_sqlite(data.path())
        .await
        .unwrap();
    let token = storage
        .upsert_user_for("alice-cli", Role::Lead, None, cutover_server::clock::now())
        .await
        .unwrap();
    storage
        .set_user_email("alice-cli", Some("ALICE@example.test"))
        .await
        .unwrap();
    storage.close().await;
    let r = app
        .http
        .post(format!("{}/api/rollouts/two/approvals", app.url))
        .bearer_auth(&token)
        .json(&json!({ "reason": "me again" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "one person, two ways in: one approval");
    let body = r.text().await.unwrap();
    assert!(body.contains("already approved"), "{body}");
    // Another lead is another person.
    let (status, body) = app
        .post(
            Some(Role::Lead),
            "/api/rollouts/two/approvals",
            json!({ "reason": "second pair of eyes" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Anyone may start a sign-in, so the sign-ins kept while under way are capped: past the
/// cap a start is refused and nothing more is kept; expired ones make room again.
#[tokio::test]
async fn sign_ins_under_way_are_capped() {
    let data = tempfile::tempdir().unwrap();
    let storage = cutover_server::store::Storage::open_sqlite(data.path())
        .await
        .unwrap();
    let pending = cutover_server::store::Pending {
        nonce: "n".into(),
        verifier: "v".into(),
        return_to: "/".into(),
    };
    for i in 0..3 {
        assert!(
            storage
                .sso_begin(&format!("s{i}"), &pending, 1_000, 600_000, 3)
                .await
                .unwrap()
        );
    }
    assert!(
        !storage
            .sso_begin("s3", &pending, 1_000, 600_000, 3)
            .await
            .unwrap()
    );
    assert!(
        storage
            .sso_take("s3", 1_000, 600_000)
            .await
            .unwrap()
            .is_none(),
        "not kept"
    );
    // Ten minutes on, the old ones are gone and a new one fits.
    assert!(
        storage
            .sso_begin("s4", &pending, 700_000, 600_000, 3)
            .await
            .unwrap()
    );
    storage.close().await;
}
