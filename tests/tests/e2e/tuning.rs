//! Tuning inside a stage and knowing the world took it, as a person sees them: an operator
//! adjusts a flag from the page (a bounded value, a reason), the flags in force say who set
//! it, the line under them says how many of those that read the flags hold it, and a kill
//! puts the rollback there and says it was applied. A viewer has no Adjust button.

use std::time::Duration;

use crate::fixtures;
use cutover_e2e::{Browser, Demo};

fn plan(env_file: &std::path::Path) -> String {
    fixtures::two_stage_plan(
        "tuned",
        "Tuned",
        r#"
[rollback]
flags = { shadow_mode = false }

[[adjust]]
flag = "sampling"
title = "Shadow sampling (%)"
min = 0
max = 100
stages = ["canary"]

[[actuator]]
id = "env-file"
kind = "env_file"
path = "ENV_FILE"
"#,
    )
    .replace("ENV_FILE", &env_file.to_string_lossy())
    .replacen(
        "traffic = 10\n",
        "traffic = 10\nflags = { shadow_mode = true, sampling = 100 }\n",
        1,
    )
}

#[tokio::test]
async fn an_operator_tunes_a_flag_and_sees_it_applied() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    let env_file = plans.path().join("tuned.env");
    std::fs::write(plans.path().join("tuned.toml"), plan(&env_file))?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir])?;
    let page = format!("{}/r/tuned", demo.url);
    let guard = Duration::from_secs(20);
    let operator = Browser::start().await?;
    operator.sign_in(&page, demo.token("operator")).await?;
    operator
        .wait_text("phase", guard, |t| t == "NOT STARTED")
        .await?;
    operator.click("start").await?;
    operator
        .wait_text("flag-sampling", guard, |t| t.contains("sampling = 100"))
        .await?;

    operator.click("adjust").await?;
    let label = operator.text("adjust-title").await.unwrap_or_default();
    assert!(
        label.contains("undone by the next stage change or a kill"),
        "{label}"
    );
    // The value field starts at the value in force; a value past the bound is refused in
    // words, then a good one goes through.
    let now = operator
        .client
        .execute(
            "return document.querySelector(\"[data-testid='adjust-value']\").value",
            vec![],
        )
        .await?;
    assert_eq!(now, "100");
    operator
        .client
        .execute(
            "document.querySelector(\"[data-testid='adjust-value']\").value = ''",
            vec![],
        )
        .await?;
    operator.fill("adjust-value", "150").await?;
    operator
        .fill("adjust-reason", "shadow pods at 90% CPU")
        .await?;
    operator.click("adjust-confirm").await?;
    operator
        .wait_text("action-error", guard, |t| t.contains("within 0 to 100"))
        .await?;
    for _ in 0..3 {
        operator
            .client
            .find(fantoccini::Locator::Css("[data-testid='adjust-value']"))
            .await?
            .send_keys("\u{0008}")
            .await?;
    }
    operator.fill("adjust-value", "50").await?;
    operator.click("adjust-confirm").await?;
    let line = operator
        .wait_text("flag-sampling", guard, |t| t.contains("sampling = 50"))
        .await?;
    assert!(line.contains("adjusted by demo-operator"), "{line}");
    // The env file is one of those that read the flags: it holds the adjustment.
    operator
        .wait_text("confirmation", guard, |t| {
            t.contains("applied by 1 of 1 instance")
        })
        .await?;
    operator.screenshot("tuning-adjusted").await?;

    // A viewer sees the tuning, and no button.
    let viewer = Browser::start().await?;
    viewer.sign_in(&page, demo.token("viewer")).await?;
    viewer
        .wait_text("flag-sampling", guard, |t| t.contains("adjusted by"))
        .await?;
    assert!(!viewer.has("adjust").await, "a viewer cannot adjust");

    // The kill undoes it: the rollback is in force, and applied.
    operator.click("kill").await?;
    operator.fill("kill-reason", "drill").await?;
    operator.click("kill-confirm").await?;
    operator
        .wait_text("flag-shadow_mode", guard, |t| {
            t.contains("shadow_mode = false") && t.contains("rollback")
        })
        .await?;
    assert!(!operator.has("flag-sampling").await, "the tuning is gone");
    operator
        .wait_text("confirmation", guard, |t| {
            t.contains("kill applied by 1 of 1 instance")
        })
        .await?;
    operator.screenshot("tuning-killed").await?;
    operator.close().await;
    viewer.close().await;
    Ok(())
}
