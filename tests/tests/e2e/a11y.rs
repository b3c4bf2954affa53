//! Accessibility: axe-core's WCAG 2 A/AA rules run inside the real pages (overview, the
//! operator's rollout page with its controls open, the wall, the rollout page in the light
//! theme). Nothing serious or critical.

use std::time::Duration;

use cutover_e2e::{Browser, Demo};
use serde_json::Value;

/// Runs axe on the current page; returns "rule (impact): help @ target" per serious or
/// critical violation.
async fn violations(browser: &Browser) -> anyhow::Result<Vec<String>> {
    let path = std::env::var("CUTOVER_AXE_JS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.tools/npm/node_modules/axe-core/axe.min.js"
        )
        .to_string()
    });
    let axe = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("axe-core not found at {path} ({e}): run ./x test"))?;
    browser.client.execute(&axe, vec![]).await?;
    let found = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } })
                 .then(r => done({ passes: r.passes.length, violations: r.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    target: v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', ') })) }))
                 .catch(e => done({ passes: 0, violations: [{ id: 'axe-error', impact: 'critical', help: String(e), target: '' }] }));"#,
            vec![],
        )
        .await?;
    // A run that checked nothing proves nothing.
    let passes = found["passes"].as_u64().unwrap_or(0);
    anyhow::ensure!(passes >= 5, "axe checked only {passes} rules: {found}");
    let all = found["violations"].as_array().cloned().unwrap_or_default();
    println!(
        "axe: {passes} rules pass, {} with findings: {all:?}",
        all.len()
    );
    Ok(found["violations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v: &Value| {
            format!(
                "{} ({}): {} @ {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or("?"),
                v["target"].as_str().unwrap_or("?")
            )
        })
        .collect())
}

/// Opens `url` and waits until its gate board has arrived.
async fn open(browser: &Browser, url: &str) -> anyhow::Result<()> {
    browser.goto(url).await?;
    browser
        .wait_text("gates-passing", Duration::from_secs(15), |t| {
            t.ends_with("gates passing")
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_pages_pass_axe_wcag_2_a_and_aa() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let browser = Browser::start().await?;
    let mut problems = Vec::new();

    browser
        .sign_in(&format!("{}/", demo.url), demo.token("lead"))
        .await?;
    browser
        .wait_text("health-spiralogic", Duration::from_secs(15), |t| {
            !t.is_empty()
        })
        .await?;
    problems.extend(
        violations(&browser)
            .await?
            .into_iter()
            .map(|v| format!("overview: {v}")),
    );

    open(&browser, &format!("{}/r/spiralogic", demo.url)).await?;
    browser.click("kill").await?;
    problems.extend(
        violations(&browser)
            .await?
            .into_iter()
            .map(|v| format!("rollout: {v}")),
    );

    open(&browser, &format!("{}/r/spiralogic/wall", demo.url)).await?;
    problems.extend(
        violations(&browser)
            .await?
            .into_iter()
            .map(|v| format!("wall: {v}")),
    );

    // The light theme: chosen in the header, remembered across a reload, the charts drawn
    // on white, and the same rules pass.
    open(&browser, &format!("{}/r/spiralogic", demo.url)).await?;
    browser.click("theme-toggle").await?;
    // A fresh load: the choice is remembered.
    open(&browser, &format!("{}/r/spiralogic", demo.url)).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (theme, pressed, corner) = loop {
        let found = browser
            .client
            .execute(
                r#"const c = document.querySelector("[data-testid='chart-latency_ms']");
                   const px = c ? Array.from(c.getContext('2d').getImageData(1, 1, 1, 1).data) : null;
                   return [document.documentElement.getAttribute('data-theme'),
                           document.querySelector("[data-testid='theme-toggle']").getAttribute('aria-pressed'),
                           px];"#,
                vec![],
            )
            .await?;
        let white = found[2] == serde_json::json!([255, 255, 255, 255]);
        if white || std::time::Instant::now() > deadline {
            break (found[0].clone(), found[1].clone(), found[2].clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (theme.as_str(), pressed.as_str()),
        (Some("light"), Some("true"))
    );
    assert_eq!(
        corner,
        serde_json::json!([255, 255, 255, 255]),
        "a white chart"
    );
    problems.extend(
        violations(&browser)
            .await?
            .into_iter()
            .map(|v| format!("rollout, light: {v}")),
    );

    browser.close().await;
    assert!(problems.is_empty(), "axe found:\n{}", problems.join("\n"));
    Ok(())
}
