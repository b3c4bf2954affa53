//! Step back from the rollout page: an operator retreats one stage with a typed reason, the
//! page shows the earlier stage's traffic and the timeline says who and why; a viewer of the
//! same rollout has no such button.

use std::time::Duration;

use cutover_e2e::{Browser, Demo};

use crate::fixtures;

/// A guard, not a claim: a loaded CI machine can take seconds per ChromeDriver round trip.
const GUARD: Duration = Duration::from_secs(15);

#[tokio::test]
async fn an_operator_steps_back_from_the_page_and_a_viewer_cannot() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    // The canary turns the new path on; the page says which flags are in force and why.
    let text = fixtures::two_stage_plan("drill", "Step-back drill", "").replacen(
        "traffic = 10\n",
        "traffic = 10\nflags = { NEW_PATH = true }\n",
        1,
    );
    std::fs::write(plans.path().join("drill.toml"), text)?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir])?;
    let page = format!("{}/r/drill", demo.url);
    let (operator, viewer) = (Browser::start().await?, Browser::start().await?);
    operator.sign_in(&page, demo.token("operator")).await?;
    viewer.sign_in(&page, demo.token("viewer")).await?;
    operator
        .wait_text("phase", GUARD, |t| t == "NOT STARTED")
        .await?;
    assert!(
        !operator.has("step-back").await,
        "nothing to step back from yet"
    );
    operator.click("start").await?;
    operator
        .wait_text("phase", GUARD, |t| t == "RUNNING")
        .await?;
    operator
        .wait_text("flag-NEW_PATH", GUARD, |t| {
            t == "NEW_PATH = true set by canary"
        })
        .await?;
    operator.click("progress").await?;
    operator.click("progress-confirm").await?;
    operator
        .wait_text("traffic", GUARD, |t| t == "100% traffic")
        .await?;

    let button = operator
        .wait_text("step-back", GUARD, |t| t == "Step back to canary…")
        .await?;
    assert_eq!(button, "Step back to canary…");
    operator.click("step-back").await?;
    let title = operator.text("step-back-title").await.unwrap_or_default();
    assert!(
        title.starts_with("Step back to canary? Traffic returns to 10%"),
        "{title}"
    );
    operator
        .fill("step-back-reason", "p99 regression at full traffic")
        .await?;
    operator.click("step-back-confirm").await?;
    operator
        .wait_text("traffic", GUARD, |t| t == "10% traffic")
        .await?;
    operator
        .wait_text("timeline", GUARD, |t| {
            t.contains("step_back by demo-operator (operator) “p99 regression at full traffic”")
        })
        .await?;
    // The viewer sees the retreat, and has no button to make one.
    viewer
        .wait_text("traffic", GUARD, |t| t == "10% traffic")
        .await?;
    assert!(!viewer.has("step-back").await, "a viewer has no step back");
    viewer
        .wait_text("flag-NEW_PATH", GUARD, |t| {
            t == "NEW_PATH = true set by canary"
        })
        .await?;
    assert_eq!(operator.text("phase").await.as_deref(), Some("RUNNING"));
    operator.screenshot("rollout-step-back").await?;
    operator.close().await;
    viewer.close().await;
    Ok(())
}
