//! A person signs in through the company's OpenID provider in the browser: the sign-in page
//! offers the provider first, the provider's own login page takes their name, cutover shows
//! the buttons their groups' role allows, they act, and the timeline names them.

use std::time::Duration;

use cutover_e2e::{Browser, Demo, free_port};
use fantoccini::Locator;
use serde_json::json;

use crate::oidc::{self, Provider};

#[tokio::test]
async fn a_person_signs_in_through_the_provider_and_acts_under_their_name() -> anyhow::Result<()> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let provider = Provider::start(
        &format!("http://{addr}/auth/sso/callback"),
        json!({
            "alice": oidc::user("Alice Liddell", "alice@example.test", &["launch-leads"]),
            "bob": oidc::user("Bob Builder", "bob@example.test", &["staff"]),
        }),
    )
    .await;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("sso.toml"),
        crate::fixtures::two_stage_plan("sso", "Signed in", ""),
    )?;
    // Beside the plans, not among them.
    let etc = tempfile::tempdir()?;
    let config = etc.path().join("cutover.toml");
    std::fs::write(
        &config,
        format!(
            "[sso]\nissuer = \"{}\"\nname = \"Test SSO\"\nclient_id = \"{}\"\n\
             client_secret_env = \"CUTOVER_TEST_SSO_SECRET\"\ncontact = \"#cutover-admins\"\n\n\
             [sso.groups]\nlaunch-leads = [\"lead\"]\n",
            provider.issuer,
            oidc::CLIENT_ID
        ),
    )?;
    let plans = dir.path().to_string_lossy().to_string();
    let demo = Demo::start_at(
        &addr,
        &["--plans", &plans, "--config", &config.to_string_lossy()],
        &[("CUTOVER_TEST_SSO_SECRET", oidc::CLIENT_SECRET)],
    )?;

    let browser = Browser::start().await?;
    browser.goto(&format!("{}/r/sso", demo.url)).await?;
    browser
        .wait_text("sso-sign-in", Duration::from_secs(15), |t| {
            t == "Sign in with Test SSO"
        })
        .await?;
    browser.screenshot("sso-sign-in-page").await?;
    browser.click("sso-sign-in").await?;
    // The provider's own login page.
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("input[name=login]"))
        .await?
        .send_keys("alice")
        .await?;
    browser
        .client
        .find(Locator::Css("input[name=password]"))
        .await?
        .send_keys("anything")
        .await?;
    browser
        .client
        .find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    // Back on the rollout page, as Alice, with a lead's buttons.
    browser
        .wait_text("phase", Duration::from_secs(20), |t| t == "NOT STARTED")
        .await?;
    assert!(browser.has("kill").await, "a lead may kill");
    browser.click("start").await?;
    browser
        .wait_text("timeline", Duration::from_secs(15), |t| {
            t.contains("Alice Liddell")
        })
        .await?;
    browser.screenshot("sso-signed-in").await?;
    browser.close().await;

    // Bob's groups map to nothing: the page says so and whom to ask.
    let other = Browser::start().await?;
    other.goto(&format!("{}/r/sso", demo.url)).await?;
    other.click("sso-sign-in").await?;
    other
        .client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("input[name=login]"))
        .await?
        .send_keys("bob")
        .await?;
    other
        .client
        .find(Locator::Css("input[name=password]"))
        .await?
        .send_keys("anything")
        .await?;
    other
        .client
        .find(Locator::Css("button[type=submit]"))
        .await?
        .click()
        .await?;
    let refused = other
        .client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("main p"))
        .await?
        .text()
        .await?;
    assert!(
        refused.contains("no group that cutover gives a role to")
            && refused.contains("#cutover-admins"),
        "{refused}"
    );
    other.close().await;
    drop(demo);
    Ok(())
}
