//! The war room's clock on the rollout page: after a start T-0 is set, the T+ clock moves, an
//! item due before T-0 is marked OVERDUE in words and a shape (not colour alone) until it is
//! checked, and the next item due is named with its time.

use std::time::Duration;

use cutover_e2e::{Browser, Demo};

use crate::fixtures;

/// A guard, not a claim: a loaded CI machine can take seconds per ChromeDriver round trip.
const GUARD: Duration = Duration::from_secs(15);

const LISTS: &str = r#"
[[checklist]]
id = "pre"
title = "Before"
phase = "T-30m"
items = [{ id = "backup", text = "Backup taken" }]

[[checklist]]
id = "after"
title = "After"
items = [
  { id = "smoke", text = "Smoke test at full traffic", phase = "T+2h" },
  { id = "settled", text = "Full traffic settled", phase = "ga+3h" },
]
"#;

#[tokio::test]
async fn the_clock_moves_and_an_overdue_item_says_so_until_checked() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    let text = fixtures::two_stage_plan("clocked", "Clock drill", LISTS);
    std::fs::write(plans.path().join("clocked.toml"), text)?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir])?;
    let operator = Browser::start().await?;
    operator
        .sign_in(&format!("{}/r/clocked", demo.url), demo.token("operator"))
        .await?;
    operator
        .wait_text("phase", GUARD, |t| t == "NOT STARTED")
        .await?;
    // The checklists render a frame after the phase (below the fold): wait for them.
    let due = operator
        .wait_text("item-pre-backup-due", GUARD, |t| !t.is_empty())
        .await?;
    assert_eq!(due, "due T-30m", "no T-0 yet: nothing is overdue");
    // An item due after a stage's entry says so in words, not as a code.
    let settled = operator
        .wait_text("item-after-settled-due", GUARD, |t| !t.is_empty())
        .await?;
    assert!(
        settled.starts_with("due 3h") && settled.ends_with("after entering ga"),
        "{settled}"
    );

    operator.click("start").await?;
    let first = operator
        .wait_text("t-clock", GUARD, |t| t.starts_with("T+"))
        .await?;
    operator
        .wait_text("t-clock", GUARD, |t| t.starts_with("T+") && t != first)
        .await?;
    operator
        .wait_text("item-pre-backup-due", GUARD, |t| {
            t == "⚠ OVERDUE · due T-30m"
        })
        .await?;
    operator
        .wait_text("overdue-count", GUARD, |t| t == "▲ 1 OVERDUE")
        .await?;
    let next = operator.text("next-due").await.unwrap_or_default();
    assert!(
        // Set T-0 a moment ago: "in 1h 59m", or "1h 58m" on a slow machine.
        next.starts_with("next: Smoke test at full traffic at T+2h (in 1h 5"),
        "{next}"
    );
    operator.screenshot("rollout-clock-overdue").await?;

    operator
        .client
        .find(fantoccini::Locator::Css("#item-pre-backup"))
        .await?
        .click()
        .await?;
    operator
        .wait_text("item-pre-backup-due", GUARD, |t| t == "due T-30m")
        .await?;
    operator
        .wait_text("overdue-count", GUARD, |t| t.is_empty())
        .await?;
    operator.close().await;
    Ok(())
}
