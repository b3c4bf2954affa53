//! A sequential comparison on screen: still gathering evidence, a gate reads NOT YET KNOWN in
//! words with its interval, the events on each side and when a decision may come; a split
//! other than the stage implies reads "traffic split off" and makes health DEGRADED, saying
//! why.

use std::time::Duration;

use crate::fixtures;
use cutover_e2e::{Browser, Demo};

const GATE: &str = r#"
[[gate]]
id = "vs-baseline"
title = "p95 within 10% of baseline"
expr = 'not_above(p95(latency_ms{variant="canary"}), p95(latency_ms{variant="baseline"}), 10%)'
window = "10s"
hold = "1m"
stages = ["canary"]
"#;

#[tokio::test]
async fn a_comparison_not_yet_known_says_so_in_words_with_its_interval() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    // The demo's traffic splits canary and baseline half and half: as "even" expects, and
    // not as "traffic" (the default: 10% canary at this stage) does.
    std::fs::write(
        plans.path().join("even.toml"),
        fixtures::two_stage_plan(
            "even",
            "Even",
            &format!("[compare]\nsplit = \"even\"\n{GATE}"),
        ),
    )?;
    std::fs::write(
        plans.path().join("skewed.toml"),
        fixtures::two_stage_plan("skewed", "Skewed", GATE),
    )?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir])?;
    let guard = Duration::from_secs(30);
    let lead = Browser::start().await?;

    lead.sign_in(&format!("{}/r/even", demo.url), demo.token("lead"))
        .await?;
    lead.wait_text("phase", guard, |t| t == "NOT STARTED")
        .await?;
    lead.click("start").await?;
    let row = lead
        .wait_text("gate-vs-baseline", guard, |t| {
            t.contains("NOT YET KNOWN") && t.contains("% to ")
        })
        .await?;
    assert!(row.contains("not yet known: canary"), "{row}");
    // The interval of canary against baseline, with both ends, once there are events enough.
    assert!(row.contains("% of baseline (allowed up to +10%)"), "{row}");
    assert!(row.contains("baseline events in"), "{row}");
    // A few seconds of events are too few to say when a decision comes.
    assert!(
        row.contains("too early to say when a decision comes"),
        "{row}"
    );
    assert!(!row.contains("PASS") && !row.contains("FAIL"), "{row}");
    // Still gathering evidence is not trouble, and not called a failure.
    let health = lead.text("health").await.unwrap_or_default();
    assert!(!health.contains("DEGRADED"), "{health}");
    let blockers = lead
        .wait_text("progress-blockers", guard, |t| t.contains("vs-baseline"))
        .await?;
    assert!(
        blockers.contains("gate vs-baseline is not yet known") && !blockers.contains("failing"),
        "{blockers}"
    );
    lead.screenshot("compare-not-yet-known").await?;
    lead.client
        .execute(
            "document.querySelector(\"[data-testid='gate-vs-baseline']\").scrollIntoView()",
            vec![],
        )
        .await?;
    lead.screenshot("compare-not-yet-known-row").await?;
    // The comparison's own chart: the estimate and its interval since the stage began,
    // against the allowed line.
    let chart = lead
        .wait_text("panel-compare-vs-baseline", guard, |t| {
            t.contains("estimate")
        })
        .await?;
    assert!(chart.contains("since the stage began"), "{chart}");
    assert!(chart.contains("interval (95%)"), "{chart}");
    lead.client
        .execute(
            "document.querySelector(\"[data-testid='panel-compare-vs-baseline']\").scrollIntoView()",
            vec![],
        )
        .await?;
    // A few more seconds of events draw a few points of the interval.
    tokio::time::sleep(Duration::from_secs(12)).await;
    lead.screenshot("compare-chart").await?;

    lead.goto(&format!("{}/r/skewed", demo.url)).await?;
    lead.wait_text("phase", guard, |t| t == "NOT STARTED")
        .await?;
    lead.click("start").await?;
    let row = lead
        .wait_text("gate-vs-baseline", guard, |t| {
            t.contains("traffic split off")
        })
        .await?;
    assert!(row.contains("NOT YET KNOWN"), "{row}");
    assert!(row.contains("where the stage implies 10.0%"), "{row}");
    lead.wait_text("health", guard, |t| t.contains("DEGRADED"))
        .await?;
    let why = lead.text("health-why").await.unwrap_or_default();
    assert!(why.contains("traffic split off"), "{why}");
    lead.screenshot("compare-split-off").await?;
    lead.close().await;
    Ok(())
}
