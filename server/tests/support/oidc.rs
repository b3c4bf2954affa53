//! A real OpenID provider (the certified `oidc-provider` package from npm, which `./x test`
//! installs) on a loopback port of its own, with users in groups, and a browser-like walk
//! through its sign-in pages.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

pub const CLIENT_ID: &str = "test-rp";
pub const CLIENT_SECRET: &str = "test-rp-secret-0123456789abcdef";

pub struct Provider {
    pub issuer: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// The package's entry file: `CUTOVER_OIDC_PROVIDER`, else where `./x` installs it.
fn module() -> PathBuf {
    std::env::var_os("CUTOVER_OIDC_PROVIDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.tools/npm/node_modules/oidc-provider/lib/index.js")
        })
}

impl Provider {
    /// Starts the provider for a relying party whose callback is `redirect`, with `users`
    /// (id -> claims: name, email, email_verified, groups).
    pub async fn start(redirect: &str, users: Value) -> Provider {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.json"), users.to_string()).unwrap();
        let module = module();
        assert!(
            module.exists(),
            "oidc-provider is not installed at {} (./x test installs it)",
            module.display()
        );
        let mut child = tokio::process::Command::new("node")
            // From the server's tests or the end-to-end crate's, both one level below the root.
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../server/tests/support/oidc-provider.mjs"
            ))
            .env("OIDC_PROVIDER", &module)
            .env("RP_REDIRECT", redirect)
            .env("OP_STATE_DIR", dir.path())
            .env("SKIP_CONSENT", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(issuer) = line.strip_prefix("OP listening on ") {
                    return issuer.to_string();
                }
            }
            panic!("the provider ended before it listened");
        })
        .await
        .expect("the provider starts within 20 s");
        Provider {
            issuer,
            child,
            _dir: dir,
        }
    }

    /// Replaces one user's claims (groups included) for their next sign-in.
    pub async fn set_user(&self, id: &str, claims: Value) {
        let r = reqwest::Client::new()
            .put(format!("{}/__admin/users/{id}", self.issuer))
            .body(claims.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// A new signing key; the old one is dropped from the key set unless `keep_old`.
    pub async fn rotate(&self, keep_old: bool) {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/__admin/rotate{}",
                self.issuer,
                if keep_old { "?keep_old=1" } else { "" }
            ))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

pub fn user(name: &str, email: &str, groups: &[&str]) -> Value {
    json!({ "name": name, "email": email, "email_verified": true, "preferred_username": name, "groups": groups })
}

/// A browser of its own: a cookie jar, redirects followed by hand.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Where a sign-in stands after a walk: the callback URL the provider sent the browser to.
pub struct AtCallback {
    pub url: String,
}

/// From cutover's start URL through the provider's login page as `login`, up to (not into)
/// the callback: the URL the provider sent the browser back to.
pub async fn walk_to_callback(
    browser: &reqwest::Client,
    app: &str,
    return_to: &str,
    login: &str,
) -> AtCallback {
    let mut url = format!("{app}/auth/sso/start?return_to={}", urlencode(return_to));
    for _ in 0..20 {
        if url.starts_with(&format!("{app}/auth/sso/callback")) {
            return AtCallback { url };
        }
        let r = browser.get(&url).send().await.unwrap();
        if r.status().is_redirection() {
            let next = r.headers()["location"].to_str().unwrap().to_string();
            url = absolute(&url, &next);
            continue;
        }
        let page = r.text().await.unwrap();
        let form = url.clone();
        let fields: Vec<(&str, &str)> = if page.contains("name=\"prompt\" value=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else if page.contains("name=\"prompt\" value=\"consent\"") {
            vec![("prompt", "consent")]
        } else {
            panic!("an unexpected page at {url}: {page}");
        };
        let r = browser.post(&form).form(&fields).send().await.unwrap();
        assert!(r.status().is_redirection(), "{}", r.text().await.unwrap());
        url = absolute(&form, r.headers()["location"].to_str().unwrap());
    }
    panic!("the sign-in went round in circles");
}

/// Walks the whole sign-in: the callback's answer.
pub async fn sign_in(
    browser: &reqwest::Client,
    app: &str,
    return_to: &str,
    login: &str,
) -> reqwest::Response {
    let at = walk_to_callback(browser, app, return_to, login).await;
    browser.get(&at.url).send().await.unwrap()
}

fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
