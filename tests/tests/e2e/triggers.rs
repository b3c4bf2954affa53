//! An alert trigger fires in the browser's view of a live rollout: the timeline says which
//! trigger and why, every chart marks it on its time axis, the chart shows the line it
//! watches, and the rollout runs on.

use crate::fixtures;
use std::time::Duration;

use cutover_e2e::{Browser, Demo};

/// A rehearsal plan whose alert fires within seconds of the start under the demo's
/// error-spike traffic (40% errors against a 5% line).
fn drill() -> String {
    fixtures::two_stage_plan(
        "drill",
        "Alert drill",
        r#"
[[metric]]
id = "error"
kind = "ratio"

[[gate]]
id = "p95"
expr = "p95(latency_ms) <= 700ms"
window = "1m"
hold = "10m"

[[trigger]]
id = "error-spike"
title = "Error rate over 5%"
expr = "rate(error) > 5%"
window = "10s"
for = "3s"
action = "alert"

[[trigger]]
id = "slow"
title = "p95 over 900ms for 10 minutes"
expr = "p95(latency_ms) > 900ms"
for = "10m"
action = "kill"
"#,
    )
}

#[tokio::test]
async fn an_alert_is_marked_on_every_chart_and_in_the_timeline() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    std::fs::write(plans.path().join("drill.toml"), drill())?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir, "--scenario", "drill=error-spike"])?;
    let page = format!("{}/r/drill", demo.url);
    let operator = Browser::start().await?;
    operator.sign_in(&page, demo.token("operator")).await?;
    operator
        .wait_text("phase", Duration::from_secs(15), |t| t == "NOT STARTED")
        .await?;
    // Not armed before the start: errors alone record nothing.
    operator.click("start").await?;
    // A guard, not a claim: a loaded CI machine can take seconds per ChromeDriver round trip.
    operator
        .wait_text("phase", Duration::from_secs(15), |t| t == "RUNNING")
        .await?;
    operator
        .wait_text("timeline", Duration::from_secs(20), |t| {
            t.contains("alert error-spike by trigger error-spike (system) “trigger error-spike")
        })
        .await?;
    for chart in ["latency_ms", "error"] {
        let marks = operator
            .wait_text(&format!("marks-{chart}"), Duration::from_secs(15), |t| {
                t.contains(" alert error-spike")
            })
            .await?;
        assert!(marks.contains(" start canary"), "{chart}: {marks}");
    }
    // A quiet trigger reads as what it is, never as a false comparison ("424ms > 900ms").
    let quiet = operator
        .wait_text("trigger-slow", Duration::from_secs(15), |t| {
            t.contains("QUIET")
        })
        .await?;
    assert!(quiet.contains("kills past 900ms for 10m"), "{quiet}");
    assert!(!quiet.contains("> 900"), "{quiet}");
    // The line the alert watches is on the chart, and the legend says what it does.
    let panel = operator.text("panel-error").await.unwrap_or_default();
    assert!(panel.contains("error-spike alerts past 5%"), "{panel}");
    // The marker opens the record behind it: who, why, and what the gates said then.
    let marks = operator
        .client
        .find_all(fantoccini::Locator::Css(
            "[data-testid='marks-error'] button",
        ))
        .await?;
    let mut alert_mark = None;
    for mark in marks {
        if mark.text().await?.contains("alert error-spike") {
            alert_mark = Some(mark);
        }
    }
    alert_mark
        .ok_or_else(|| anyhow::anyhow!("no alert marker button"))?
        .click()
        .await?;
    let record = operator
        .wait_text("record", Duration::from_secs(10), |t| {
            t.contains("alert error-spike by trigger error-spike (system)")
        })
        .await?;
    assert!(
        record.contains("p95(latency_ms) = "),
        "the gate values then: {record}"
    );
    assert!(
        record.contains("Triggers breaching then: error-spike"),
        "{record}"
    );
    operator.click("record-close").await?;
    assert!(!operator.has("record").await);
    assert_eq!(operator.text("phase").await.as_deref(), Some("RUNNING"));
    operator.screenshot("rollout-alert").await?;
    operator.close().await;
    Ok(())
}

/// A fired alert is open until someone acknowledges it: the wall and the overview show it
/// first, with how long it has been open; a viewer has no Acknowledge button; the operator's
/// clears it everywhere.
#[tokio::test]
async fn an_open_alert_shows_on_the_wall_and_overview_until_acknowledged() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    std::fs::write(plans.path().join("drill.toml"), drill())?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir, "--scenario", "drill=error-spike"])?;
    let guard = Duration::from_secs(20);
    let operator = Browser::start().await?;
    operator
        .sign_in(&format!("{}/r/drill", demo.url), demo.token("operator"))
        .await?;
    operator
        .wait_text("phase", guard, |t| t == "NOT STARTED")
        .await?;
    assert!(
        !operator.has("open-alerts").await,
        "nothing open before the start"
    );
    operator.click("start").await?;
    let open = operator
        .wait_text("open-alert-error-spike", guard, |t| {
            t.contains("ALERT error-spike")
        })
        .await?;
    assert!(
        open.contains("· open ") && open.contains("by trigger error-spike · unacknowledged"),
        "{open}"
    );

    // The wall: the open alert first, no button.
    let wall = Browser::start_screen(1920, 1080, false).await?;
    wall.sign_in(&format!("{}/r/drill/wall", demo.url), demo.token("viewer"))
        .await?;
    wall.wait_text("open-alert-error-spike", guard, |t| {
        t.contains("unacknowledged")
    })
    .await?;
    assert!(
        !wall.has("ack-error-spike").await,
        "the wall has no buttons"
    );
    let first = wall
        .client
        .execute(
            "return document.querySelector('main').firstElementChild.dataset.testid",
            vec![],
        )
        .await?;
    assert_eq!(first, "open-alerts", "first thing on the wall");
    wall.screenshot("wall-open-alert").await?;

    // A viewer's rollout page: the alert, no button. The overview: the card says so.
    let viewer = Browser::start().await?;
    viewer
        .sign_in(&format!("{}/r/drill", demo.url), demo.token("viewer"))
        .await?;
    viewer
        .wait_text("open-alert-error-spike", guard, |t| {
            t.contains("unacknowledged")
        })
        .await?;
    assert!(
        !viewer.has("ack-error-spike").await,
        "a viewer cannot acknowledge"
    );
    viewer.goto(&format!("{}/", demo.url)).await?;
    viewer
        .wait_text("alerts-drill", guard, |t| {
            t.starts_with("⚠ OPEN, UNACKNOWLEDGED: error-spike · ")
        })
        .await?;

    // The operator acknowledges, saying what it was: gone from the page, the wall and the
    // overview, and the record keeps the outcome the report counts.
    operator.click("ack-error-spike").await?;
    operator
        .client
        .find(fantoccini::Locator::Css(
            "[data-testid='ack-outcome'] option[value='expected']",
        ))
        .await?
        .click()
        .await?;
    operator
        .fill("ack-reason", "the drill's own error spike")
        .await?;
    operator.click("ack-confirm").await?;
    operator
        .wait_text("timeline", guard, |t| {
            t.contains("ack error-spike by demo-operator")
        })
        .await?;
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/rollouts/drill/audit", demo.url))
        .bearer_auth(demo.token("viewer"))
        .send()
        .await?
        .json()
        .await?;
    let ack = audit["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["action"]["action"] == "ack"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ack["action"]["outcome"], "expected", "{ack}");
    assert_eq!(ack["reason"], "the drill's own error spike");
    let deadline = tokio::time::Instant::now() + guard;
    while operator.has("open-alerts").await || wall.has("open-alerts").await {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the acknowledged alert stayed open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    viewer
        .wait_text("alerts-drill", guard, |t| t.is_empty())
        .await?;
    operator.close().await;
    wall.close().await;
    viewer.close().await;
    Ok(())
}

/// After a kill the demo's services obey it: the new path's errors stop, and the page shows
/// the error trigger going quiet instead of a kill that looks as if it failed.
#[tokio::test]
async fn after_a_kill_the_errors_stop_on_screen() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    std::fs::write(plans.path().join("drill.toml"), drill())?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir, "--scenario", "drill=error-spike"])?;
    let page = format!("{}/r/drill", demo.url);
    let operator = Browser::start().await?;
    operator.sign_in(&page, demo.token("operator")).await?;
    operator
        .wait_text("phase", Duration::from_secs(15), |t| t == "NOT STARTED")
        .await?;
    operator.click("start").await?;
    operator
        .wait_text("trigger-error-spike", Duration::from_secs(20), |t| {
            t.contains("FIRED")
        })
        .await?;
    operator.click("kill").await?;
    operator
        .fill("kill-reason", "errors on the new path")
        .await?;
    operator.click("kill-confirm").await?;
    operator
        .wait_text("phase", Duration::from_secs(15), |t| t == "KILLED")
        .await?;
    // The trigger's 10 s window empties of the new path's errors.
    let row = operator
        .wait_text("trigger-error-spike", Duration::from_secs(30), |t| {
            t.contains("QUIET")
        })
        .await?;
    assert!(row.contains("rate(error)"), "{row}");
    operator.screenshot("rollout-killed-quiet").await?;
    operator.close().await;
    Ok(())
}
