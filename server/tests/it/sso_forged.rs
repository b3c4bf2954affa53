//! ID tokens an attacker or a broken provider would send, each refused: another audience,
//! another issuer, expired, `alg: none`, HS256 "signed" with the provider's public key, a
//! nonce from another sign-in, a key the provider never published. The provider here is a
//! small forger of our own (a certified one will not mint these); its keys are test-only,
//! made once with `openssl genrsa` (`testdata/oidc/`), and sign nothing real.

use crate::support::TestApp;

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use cutover_core::role::Role;
use hmac::Mac;
use openidconnect::core::{
    CoreGenderClaim, CoreIdToken, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey,
};
use openidconnect::{
    Audience, EmptyAdditionalClaims, IdTokenClaims, IssuerUrl, JsonWebKeyId, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use serde_json::{Value, json};

const FORGER: &str = include_str!("../../../testdata/oidc/forger.pem");
const FORGER_PUBLIC: &str = include_str!("../../../testdata/oidc/forger.pub.pem");
const STRANGER: &str = include_str!("../../../testdata/oidc/stranger.pem");

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Forgery {
    Honest,
    OtherAudience,
    OtherIssuer,
    Expired,
    AlgNone,
    HmacWithPublicKey,
    ForeignNonce,
    UnpublishedKey,
}

#[derive(Clone)]
struct Forger {
    issuer: String,
    redirect: String,
    forgery: Arc<Mutex<Forgery>>,
    /// The nonce of the sign-in under way, as the browser brought it.
    nonce: Arc<Mutex<String>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key(pem: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("forger-1".into()))).unwrap()
}

impl Forger {
    fn token(&self) -> String {
        let forgery = *self.forgery.lock().unwrap();
        let now = now_secs();
        let (issuer, audience, expires) = match forgery {
            Forgery::OtherIssuer => ("https://evil.example".to_string(), "test-rp", now + 300),
            Forgery::OtherAudience => (self.issuer.clone(), "someone-else", now + 300),
            Forgery::Expired => (self.issuer.clone(), "test-rp", now - 60),
            _ => (self.issuer.clone(), "test-rp", now + 300),
        };
        let nonce = match forgery {
            Forgery::ForeignNonce => "a-nonce-from-another-sign-in".to_string(),
            _ => self.nonce.lock().unwrap().clone(),
        };
        let claims = IdTokenClaims::<EmptyAdditionalClaims, CoreGenderClaim>::new(
            IssuerUrl::new(issuer).unwrap(),
            vec![Audience::new(audience.into())],
            chrono_at(expires),
            chrono_at(now),
            StandardClaims::new(SubjectIdentifier::new("eve".into())),
            EmptyAdditionalClaims {},
        )
        .set_nonce(Some(Nonce::new(nonce)));
        let payload = serde_json::to_vec(&claims).unwrap();
        match forgery {
            Forgery::AlgNone => format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(&payload)
            ),
            Forgery::HmacWithPublicKey => {
                let signed = format!(
                    "{}.{}",
                    b64(br#"{"alg":"HS256","typ":"JWT","kid":"forger-1"}"#),
                    b64(&payload)
                );
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(FORGER_PUBLIC.as_bytes()).unwrap();
                mac.update(signed.as_bytes());
                format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
            }
            Forgery::UnpublishedKey => sign(claims, &key(STRANGER)),
            _ => sign(claims, &key(FORGER)),
        }
    }
}

fn chrono_at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, 0).unwrap()
}

fn sign(
    claims: IdTokenClaims<EmptyAdditionalClaims, CoreGenderClaim>,
    key: &CoreRsaPrivateSigningKey,
) -> String {
    let token = CoreIdToken::new(
        claims,
        key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .unwrap();
    serde_json::to_value(&token)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

async fn discovery(State(f): State<Forger>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": f.issuer,
        "authorization_endpoint": format!("{}/auth", f.issuer),
        "token_endpoint": format!("{}/token", f.issuer),
        "jwks_uri": format!("{}/jwks", f.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(_): State<Forger>) -> axum::Json<Value> {
    let public = key(FORGER).as_verification_key();
    axum::Json(json!({ "keys": [public] }))
}

/// Sends the browser straight back with a code, remembering the nonce it came with.
async fn authorize(
    State(f): State<Forger>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    *f.nonce.lock().unwrap() = q.get("nonce").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    (
        axum::http::StatusCode::SEE_OTHER,
        [(
            "location",
            format!("{}?code=forged-code&state={state}", f.redirect),
        )],
    )
}

async fn token(State(f): State<Forger>) -> axum::Json<Value> {
    axum::Json(json!({
        "access_token": "forged-access",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": f.token(),
    }))
}

async fn start() -> (TestApp, Forger, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let (app, forger) = TestApp::start_with_sso(
        data.path(),
        vec![crate::support::open_plan("open", 2)],
        |url| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let issuer = format!("http://{}", listener.local_addr().unwrap());
            let forger = Forger {
                issuer: issuer.clone(),
                redirect: format!("{url}/auth/sso/callback"),
                forgery: Arc::new(Mutex::new(Forgery::Honest)),
                nonce: Arc::default(),
            };
            let router = axum::Router::new()
                .route("/.well-known/openid-configuration", get(discovery))
                .route("/jwks", get(jwks))
                .route("/auth", get(authorize))
                .route("/token", post(token))
                .with_state(forger.clone());
            tokio::spawn(async move { axum::serve(listener, router).await });
            let mut settings = crate::sso::tests_settings(&issuer);
            settings.email_domains.clear();
            settings.default_roles = vec![Role::Viewer];
            (settings, forger)
        },
    )
    .await;
    (app, forger, data)
}

#[tokio::test]
async fn forged_id_tokens_are_refused_and_an_honest_one_gets_in() {
    let (app, forger, _data) = start().await;
    for (forgery, words) in [
        (Forgery::OtherAudience, "audience"),
        (Forgery::OtherIssuer, "issuer"),
        (Forgery::Expired, "expired"),
        (Forgery::AlgNone, "ID token"),
        (Forgery::HmacWithPublicKey, "ID token"),
        (Forgery::ForeignNonce, "nonce"),
        (Forgery::UnpublishedKey, "ID token"),
        (Forgery::Honest, "Signed in as eve"),
    ] {
        *forger.forgery.lock().unwrap() = forgery;
        let browser = crate::oidc::browser();
        let r = crate::oidc::sign_in(&browser, &app.url, "/", "eve").await;
        let status = r.status().as_u16();
        let page = r.text().await.unwrap();
        println!(
            "{forgery:?}: {status} {}",
            page.split("<p>").nth(1).unwrap_or("")
        );
        if forgery == Forgery::Honest {
            assert_eq!(status, 200, "{page}");
        } else {
            assert_eq!(status, 400, "{forgery:?} must be refused: {page}");
            assert!(page.contains("Sign-in refused"), "{forgery:?}: {page}");
        }
        assert!(
            page.to_lowercase().contains(&words.to_lowercase()),
            "{forgery:?} should say {words:?}: {page}"
        );
        // Refused, no session was opened.
        let me = browser
            .get(format!("{}/api/rollouts", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            me.status().as_u16() == 200,
            forgery == Forgery::Honest,
            "{forgery:?}"
        );
    }
}

/// A provider that answers with more than a discovery document ever needs is cut off at
/// 1 MiB: the sign-in page says the provider answered wrongly, and memory holds no more.
#[tokio::test]
async fn an_oversized_answer_from_the_provider_is_refused_not_read() {
    let data = tempfile::tempdir().unwrap();
    let (app, _) = TestApp::start_with_sso(
        data.path(),
        vec![crate::support::open_plan("open", 2)],
        |_url| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let issuer = format!("http://{}", listener.local_addr().unwrap());
            let router = axum::Router::new().route(
                "/.well-known/openid-configuration",
                get(|| async { vec![b' '; 8 * 1024 * 1024] }),
            );
            tokio::spawn(async move { axum::serve(listener, router).await });
            (crate::sso::tests_settings(&issuer), ())
        },
    )
    .await;
    let r = crate::oidc::browser()
        .get(format!("{}/auth/sso/start", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let page = r.text().await.unwrap();
    assert!(page.contains("over 1048576 bytes"), "{page}");
}
