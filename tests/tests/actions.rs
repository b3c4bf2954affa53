//! An operator acts on a rollout in the browser and everyone else sees it live: a refused
//! action shows the server's reason; the kill switch asks for a reason, and a viewer's screen
//! shows KILLED within two seconds, with no controls of its own.

use std::time::{Duration, Instant};

use cutover_e2e::{Browser, Demo};

#[tokio::test]
async fn the_kill_switch_reaches_every_viewer_within_two_seconds() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let page = format!("{}/r/spiralogic", demo.url);
    let operator = Browser::start().await?;
    let viewer = Browser::start().await?;
    operator.sign_in(&page, demo.token("operator")).await?;
    viewer.sign_in(&page, demo.token("viewer")).await?;
    viewer
        .wait_text("phase", Duration::from_secs(15), |t| t == "NOT STARTED")
        .await?;
    operator
        .wait_text("phase", Duration::from_secs(15), |t| t == "NOT STARTED")
        .await?;
    assert!(
        !viewer.has("kill").await && !viewer.has("start").await,
        "a viewer gets no controls"
    );
    operator
        .wait_text("gates-passing", Duration::from_secs(10), |t| {
            t.ends_with("of 7 gates passing")
        })
        .await?;

    // Starting without the pre-flight checklist is refused, and the page says why.
    operator.click("start").await?;
    operator
        .wait_text("action-error", Duration::from_secs(5), |t| {
            t.starts_with("not ready to enter canary: checklist preflight has 7 open item(s)")
        })
        .await?;

    operator.click("kill").await?;
    let confirm = operator
        .client
        .find(fantoccini::Locator::Css("[data-testid='kill-confirm']"))
        .await?;
    assert!(
        confirm.attr("disabled").await?.is_some(),
        "no kill without a reason"
    );
    operator.fill("kill-reason", "p95 breach in canary").await?;
    let clicked = Instant::now();
    operator.click("kill-confirm").await?;
    viewer
        .wait_text("phase", Duration::from_secs(2), |t| t == "KILLED")
        .await?;
    println!("kill to viewer's screen: {:?}", clicked.elapsed());
    let by = viewer.text("killed-by").await.unwrap_or_default();
    assert_eq!(by, "by demo-operator (operator): p95 breach in canary");
    assert_eq!(viewer.text("traffic").await.as_deref(), Some("0% traffic"));
    viewer
        .wait_text("timeline", Duration::from_secs(3), |t| {
            t.contains("kill by demo-operator (operator) “p95 breach in canary”")
        })
        .await?;
    operator
        .wait_text("phase", Duration::from_secs(2), |t| t == "KILLED")
        .await?;
    assert!(!operator.has("kill").await, "nothing left to kill");

    operator.screenshot("rollout-killed").await?;
    operator.close().await;
    viewer.close().await;
    Ok(())
}

#[tokio::test]
async fn a_checked_item_shows_who_checked_it_in_another_browser_within_two_seconds()
-> anyhow::Result<()> {
    let demo = Demo::start()?;
    let page = format!("{}/r/spiralogic", demo.url);
    let operator = Browser::start().await?;
    let viewer = Browser::start().await?;
    operator.sign_in(&page, demo.token("operator")).await?;
    viewer.sign_in(&page, demo.token("viewer")).await?;
    let who = "item-preflight-migration-who";
    viewer
        .wait_text(who, Duration::from_secs(15), |t| t == "needs operator")
        .await?;
    operator
        .wait_text(who, Duration::from_secs(15), |t| t == "needs operator")
        .await?;
    let viewer_box = viewer
        .client
        .find(fantoccini::Locator::Css("#item-preflight-migration"))
        .await?;
    assert!(
        viewer_box.attr("disabled").await?.is_some(),
        "a viewer cannot check items"
    );

    let clicked = Instant::now();
    operator
        .client
        .find(fantoccini::Locator::Css("#item-preflight-migration"))
        .await?
        .click()
        .await?;
    viewer
        .wait_text(who, Duration::from_secs(2), |t| {
            t.starts_with("demo-operator · ")
        })
        .await?;
    println!("check to the other browser: {:?}", clicked.elapsed());
    let checklist = viewer.text("checklist-preflight").await.unwrap_or_default();
    assert!(checklist.contains("(1/7)"), "{checklist}");
    operator.close().await;
    viewer.close().await;
    Ok(())
}
