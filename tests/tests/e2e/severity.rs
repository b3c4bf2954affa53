//! Severity means something on screen: a failing warning gate leaves Progress enabled and
//! says it does not block; progress then goes through.

use std::time::Duration;

use crate::fixtures;
use cutover_e2e::{Browser, Demo};

#[tokio::test]
async fn a_failing_warning_gate_leaves_progress_enabled_and_says_why() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    std::fs::write(
        plans.path().join("warned.toml"),
        fixtures::two_stage_plan(
            "warned",
            "Warned",
            r#"
[[metric]]
id = "error"
kind = "ratio"

[[gate]]
id = "quality"
title = "Errors under 1%"
expr = "rate(error) < 1%"
window = "10s"
hold = "1m"
stages = ["canary"]
severity = "warning"
"#,
        ),
    )?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir, "--scenario", "warned=error-spike"])?;
    let guard = Duration::from_secs(20);
    let lead = Browser::start().await?;
    lead.sign_in(&format!("{}/r/warned", demo.url), demo.token("lead"))
        .await?;
    lead.wait_text("phase", guard, |t| t == "NOT STARTED")
        .await?;
    lead.click("start").await?;
    let row = lead
        .wait_text("gate-quality", guard, |t| t.contains("FAIL"))
        .await?;
    assert!(row.contains("warning: does not block"), "{row}");
    let disabled = lead
        .client
        .execute(
            "return document.querySelector(\"[data-testid='progress']\").disabled",
            vec![],
        )
        .await?;
    assert_eq!(disabled, false, "a failing warning gate disabled Progress");
    assert!(!lead.has("progress-blockers").await, "nothing blocks");
    let failing = lead.text("failing-gate-quality").await.unwrap_or_default();
    assert!(failing.contains("(warning: does not block)"), "{failing}");
    assert!(!lead.has("override").await, "nothing to override");
    lead.screenshot("severity-warning-gate").await?;
    // Progress asks first, with the new traffic, and says where it went.
    lead.click("progress").await?;
    let title = lead.text("progress-title").await.unwrap_or_default();
    assert_eq!(title, "Progress to ga? Traffic goes from 10% to 100%.");
    lead.screenshot("progress-confirm").await?;
    lead.click("progress-confirm").await?;
    lead.wait_text("action-notice", guard, |t| t == "Entered ga (100%)")
        .await?;
    lead.wait_text("timeline", guard, |t| t.contains("progress by demo-lead"))
        .await?;
    // A role that cannot act sees why, where the button would be.
    let product = Browser::start().await?;
    product
        .sign_in(&format!("{}/r/warned", demo.url), demo.token("product"))
        .await?;
    product
        .wait_text("decide-why-not", guard, |t| {
            t == "only a lead may record a decision"
        })
        .await?;
    let disabled = product
        .client
        .execute(
            "return document.querySelector(\"[data-testid='decide']\").disabled",
            vec![],
        )
        .await?;
    assert_eq!(disabled, true);
    product.close().await;
    lead.close().await;
    Ok(())
}
