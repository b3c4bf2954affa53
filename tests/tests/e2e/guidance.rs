//! Guidance where the decision is made: when a gate fails, the rollout page shows the
//! runbook's response under it (action, cause, check, owner, link), and the wall shows the
//! action line in large type.

use std::time::Duration;

use cutover_e2e::{Browser, Demo};

use crate::fixtures;

/// A guard, not a claim: the gate's 1 m window must see the spike, and a loaded CI machine
/// can take seconds per ChromeDriver round trip.
const GUARD: Duration = Duration::from_secs(30);

const GATE: &str = r#"
[[gate]]
id = "p95"
title = "p95 under 300ms"
expr = "p95(latency_ms) <= 300ms"
window = "1m"
hold = "1m"
cause = "a cold cache after a deploy"
check = "cutover status guide"
action = "Step back to the previous stage and page the on-call"
owner = "on-call"
runbook = "https://runbooks.example/guide#p95"
"#;

#[tokio::test]
async fn a_failing_gate_shows_what_to_do_on_the_page_and_the_wall() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    let text = fixtures::two_stage_plan("guide", "Guidance drill", GATE);
    std::fs::write(plans.path().join("guide.toml"), text)?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir, "--scenario", "guide=latency-spike"])?;
    let operator = Browser::start().await?;
    operator
        .sign_in(&format!("{}/r/guide", demo.url), demo.token("operator"))
        .await?;
    let row = operator
        .wait_text("guidance-p95", GUARD, |t| !t.is_empty())
        .await?;
    assert!(
        row.contains("Action: Step back to the previous stage and page the on-call"),
        "{row}"
    );
    for part in [
        "Cause: a cold cache after a deploy",
        "Check: cutover status guide",
        "Owner: on-call",
        "runbook",
    ] {
        assert!(row.contains(part), "{part}: {row}");
    }
    let link = operator
        .client
        .find(fantoccini::Locator::Css("[data-testid='guidance-p95'] a"))
        .await?
        .attr("href")
        .await?;
    assert_eq!(link.as_deref(), Some("https://runbooks.example/guide#p95"));
    operator.screenshot("rollout-guidance").await?;
    operator.close().await;

    let wall = Browser::start().await?;
    wall.sign_in(&format!("{}/r/guide/wall", demo.url), demo.token("viewer"))
        .await?;
    wall.wait_text("guidance-now", GUARD, |t| {
        t.contains("p95 under 300ms → Step back to the previous stage and page the on-call")
    })
    .await?;
    assert!(
        !wall.has("guidance-p95").await,
        "the wall shows the line, not the board's detail"
    );
    wall.screenshot("wall-guidance").await?;
    wall.close().await;
    Ok(())
}

/// On a 1440 x 900 laptop the failing gate is on the first screen, above the charts: the
/// page leads with what fails (it sat below every chart, thousands of pixels down).
#[tokio::test]
async fn a_failing_gate_is_on_a_laptops_first_screen() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    let plan = crate::fixtures::two_stage_plan(
        "slow",
        "Slow canary",
        r#"
[[gate]]
id = "p95"
title = "p95 under 100ms"
expr = "p95(latency_ms) <= 100ms"
window = "1m"
hold = "10m"
"#,
    );
    std::fs::write(plans.path().join("slow.toml"), plan)?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir, "--scenario", "slow=latency-spike"])?;
    let laptop = Browser::start_screen(1440, 900, false).await?;
    laptop
        .sign_in(&format!("{}/r/slow", demo.url), demo.token("operator"))
        .await?;
    laptop
        .wait_text("phase", Duration::from_secs(15), |t| t == "NOT STARTED")
        .await?;
    laptop.click("start").await?;
    let failing = laptop
        .wait_text("failing-gate-p95", Duration::from_secs(20), |t| {
            t.contains("FAIL")
        })
        .await?;
    assert!(failing.contains("p95 under 100ms"), "{failing}");
    let top = laptop
        .client
        .execute(
            "const e = document.querySelector(\"[data-testid='failing-gate-p95']\"); \
             return e.getBoundingClientRect().top + window.scrollY;",
            vec![],
        )
        .await?
        .as_f64()
        .unwrap_or(f64::MAX);
    let board = laptop
        .client
        .execute(
            "const e = document.querySelector(\"[data-testid='gate-p95']\"); \
             return e ? e.getBoundingClientRect().top + window.scrollY : -1;",
            vec![],
        )
        .await?
        .as_f64()
        .unwrap_or(-1.0);
    println!(
        "first failing gate at {top:.0} px on a 1440x900 screen (the board's row: {board:.0} px)"
    );
    assert!(top < 900.0, "the failing gate is {top} px down");
    laptop.screenshot("laptop-failing-first").await?;
    laptop.close().await;
    Ok(())
}
