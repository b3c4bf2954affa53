//! A newcomer's first look: `cutover demo` (without `--fresh`) opens on a launch in flight,
//! each example rollout where a war room finds one, with the history that makes it so, and
//! things happen while they watch: a rollback trigger kills one rollout, a canary's hold
//! completes.

use std::time::Duration;

use anyhow::Context;

use cutover_e2e::{Browser, Demo};

/// A guard, not a claim: a loaded CI machine can take seconds per ChromeDriver round trip.
const GUARD: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_demo_opens_on_a_launch_in_flight_and_things_happen() -> anyhow::Result<()> {
    // The default pace: lens-v1's errors spike 45 s after the start, spiralogic's canary
    // reaches its minimum run at 90 s and its holds complete when the demo says.
    let demo = Demo::start_in_flight(&[])?;
    let browser = Browser::start().await?;
    browser
        .sign_in(&format!("{}/", demo.url), demo.token("operator"))
        .await?;

    // Every card where its scene put it.
    browser
        .wait_text("card-semantic-mirror", GUARD, |t| t.contains("hypercare"))
        .await?;
    assert_eq!(
        browser.text("progress-semantic-mirror").await.as_deref(),
        Some("stage 2 of 2")
    );
    let hal9 = browser.text("card-hal9-shadow").await.unwrap_or_default();
    assert!(
        hal9.contains("Shadow (mirrored, no user impact) · 0%"),
        "{hal9}"
    );
    let soak = browser
        .text("blocker-hal9-shadow")
        .await
        .unwrap_or_default();
    assert!(
        soak.starts_with("blocked: stage shadow has run 2h 0")
            && soak.ends_with("of its minimum 24h 00m"),
        "{soak}"
    );
    let pags = browser.text("card-pags-cutover").await.unwrap_or_default();
    assert!(pags.contains("not started"), "{pags}");
    let pending = browser
        .text("blocker-pags-cutover")
        .await
        .unwrap_or_default();
    assert_eq!(
        pending, "blocked: checklist t-60 has 1 open item(s): shadow-review",
        "the T-60 list ticked but for the lead's review"
    );
    // That review is past its time: the card's word says so, not HEALTHY.
    assert_eq!(
        browser.text("health-pags-cutover").await.as_deref(),
        Some("OVERDUE")
    );
    // A number the runbook does not give is the plan's assumption, said on the board.
    browser
        .goto(&format!("{}/r/pags-cutover", demo.url))
        .await?;
    let assumed = browser
        .wait_text("assumption-p95-slo", GUARD, |t| !t.is_empty())
        .await?;
    assert!(
        assumed.contains("the plan's assumption:") && assumed.contains("300ms is the P95 SLO"),
        "{assumed}"
    );
    // A week of hypercare: the first of seven daily checks is open, each ticked on its own.
    browser
        .goto(&format!("{}/r/semantic-mirror", demo.url))
        .await?;
    browser
        .wait_text("item-long-term-daily-days", GUARD, |t| {
            t == "0 of 7 done · daily"
        })
        .await?;
    let due = browser
        .text("item-long-term-daily-due")
        .await
        .unwrap_or_default();
    assert!(due.starts_with("1 of 7 (daily) due "), "{due}");
    browser.goto(&format!("{}/", demo.url)).await?;
    browser
        .wait_text("card-spiralogic", GUARD, |t| !t.is_empty())
        .await?;
    let spiralogic = browser.text("card-spiralogic").await.unwrap_or_default();
    assert!(spiralogic.contains("Canary (staff) · 10%"), "{spiralogic}");
    assert_eq!(
        browser.text("health-spiralogic").await.as_deref(),
        Some("HEALTHY")
    );

    // The canary an hour in: the stage's minimum and its gates' 60-minute holds not yet met.
    browser.goto(&format!("{}/r/spiralogic", demo.url)).await?;
    let blockers = browser
        .wait_text("progress-blockers", GUARD, |t| {
            t.contains("of its minimum 1h 00m")
        })
        .await?;
    assert!(
        blockers.contains("stage canary has run 5") || blockers.contains("stage canary has run 1h"),
        "the canary began about an hour ago: {blockers}"
    );
    // The T+ clock counts from that start, an hour ago.
    let clock = browser.text("t-clock").await.unwrap_or_default();
    assert!(
        clock.starts_with("T+5") || clock.starts_with("T+1h"),
        "{clock}"
    );
    // While the newcomer watches, the holds complete and beta may start, when the demo said
    // (the quality comparison's hold counts from when it concluded, which the traffic decides).
    let story = demo
        .printed
        .iter()
        .find(|l| l.trim_start().starts_with("spiralogic "))
        .cloned()
        .unwrap_or_default();
    let promised = story
        .split("the holds complete in ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(duration)
        .with_context(|| format!("the demo did not say when the holds complete: {story}"))?;
    let deadline = tokio::time::Instant::now() + promised + GUARD;
    while browser.has("progress-blockers").await {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the canary's holds did not complete when the demo said ({story}): {:?}",
            browser.text("progress-blockers").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let progress = browser
        .client
        .find(fantoccini::Locator::Css("[data-testid='progress']"))
        .await?;
    assert!(progress.is_enabled().await?, "progress stays disabled");
    browser.screenshot("in-flight-spiralogic").await?;

    // The incident: lens-v1's errors spike and its error-storm trigger kills it.
    browser.goto(&format!("{}/r/lens-v1", demo.url)).await?;
    browser
        .wait_text("phase", Duration::from_secs(120), |t| t == "KILLED")
        .await?;
    let by = browser.text("killed-by").await.unwrap_or_default();
    assert!(by.contains("by trigger error-storm (system)"), "{by}");
    // The page leads with what the plan says to do now, above the charts: the trigger's
    // response, the after-kill list and who may resume.
    let after = browser
        .wait_text("after-kill", GUARD, |t| !t.is_empty())
        .await?;
    assert!(
        after.contains("Killed: what the plan says to do now")
            && after.contains("Traffic rollback verified")
            && after.contains("(open)"),
        "{after}"
    );
    assert_eq!(
        browser.text("after-kill-resume").await.as_deref(),
        Some(
            "A lead may resume once the 6 open items are checked. Tick the items in the checklists below."
        )
    );
    let top = |id: &'static str| {
        let client = browser.client.clone();
        async move {
            let script = format!(
                "const e = document.querySelector(\"[data-testid='{id}']\"); \
                 return e ? e.getBoundingClientRect().top + window.scrollY : -1;"
            );
            anyhow::Ok(
                client
                    .execute(&script, vec![])
                    .await?
                    .as_f64()
                    .unwrap_or(-1.0),
            )
        }
    };
    let (lead, charts) = (top("after-kill").await?, top("range-15m").await?);
    assert!(
        lead >= 0.0 && lead < charts,
        "the after-kill panel ({lead}) leads the charts ({charts})"
    );
    assert!(
        lead < charts,
        "the after-kill panel ({lead}) leads the charts ({charts})"
    );
    browser.screenshot("in-flight-lens-killed").await?;
    browser.close().await;
    Ok(())
}

/// "4m 30s", "1h 02m", "45s" as the demo prints a span.
fn duration(text: &str) -> Option<Duration> {
    let mut total = 0;
    for word in text.split_whitespace() {
        let (n, unit) = word.split_at(word.find(|c: char| !c.is_ascii_digit())?);
        let n: u64 = n.parse().ok()?;
        total += n * match unit {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => return None,
        };
    }
    (total > 0).then(|| Duration::from_secs(total))
}
