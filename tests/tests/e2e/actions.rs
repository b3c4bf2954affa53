//! An operator acts on a rollout in the browser and everyone else sees it live: a refused
//! action shows the server's reason; the kill switch asks for a reason, and a viewer's screen
//! shows KILLED within two seconds, with no controls of its own.

use std::time::Duration;

use cutover_e2e::{Browser, Demo, Shows};

/// Guard deadline for what follows an action and is not a timed claim: a loaded CI machine
/// can take seconds per ChromeDriver round trip.
const GUARD: Duration = Duration::from_secs(15);

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
            t.ends_with("of 8 gates passing")
        })
        .await?;

    // Start is disabled without the pre-flight checklist, and the page says why.
    operator
        .wait_text("progress-blockers", Duration::from_secs(5), |t| {
            t.starts_with("Start is blocked:")
                && t.contains("checklist preflight has 7 open item(s)")
        })
        .await?;
    let start = operator
        .client
        .find(fantoccini::Locator::Css("[data-testid='start']"))
        .await?;
    assert!(start.attr("disabled").await?.is_some());

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
    // Timed in the pages (both browsers read this machine's clock): from the operator's click
    // to each screen showing KILLED. Polling through ChromeDriver would time the polling.
    let confirm = "[data-testid='kill-confirm']";
    operator.watch_click(confirm).await?;
    operator.watch_text("phase", Shows::Is("KILLED")).await?;
    viewer.watch_text("phase", Shows::Is("KILLED")).await?;
    operator.click("kill-confirm").await?;
    let clicked = operator.clicked_at(confirm).await?;
    let shown = viewer.text_seen_at("phase", GUARD).await? - clicked;
    println!("kill to viewer's screen: {shown} ms");
    assert!(
        shown < 2_000,
        "the viewer showed KILLED {shown} ms after the click"
    );
    let by = viewer.text("killed-by").await.unwrap_or_default();
    assert!(
        by.starts_with("by demo-operator (operator) at ") && by.ends_with(": p95 breach in canary"),
        "{by}"
    );
    assert_eq!(viewer.text("health").await.as_deref(), Some("✕ KILLED"));
    assert_eq!(viewer.text("traffic").await.as_deref(), Some("0% traffic"));
    viewer
        .wait_text("timeline", GUARD, |t| {
            t.contains("kill by demo-operator (operator) “p95 breach in canary”")
        })
        .await?;
    let own = operator.text_seen_at("phase", GUARD).await? - clicked;
    assert!(
        own < 2_000,
        "the operator's own screen showed KILLED {own} ms after the click"
    );
    assert!(!operator.has("kill").await, "nothing left to kill");
    // An operator may not resume (the plan gives that to a lead): the bar says who can,
    // rather than standing empty.
    operator
        .wait_text("killed-note", GUARD, |t| {
            t.contains("Only a lead can resume")
        })
        .await?;
    // The note ends the bar: no empty band under it (an empty alert line took 2 em).
    let band = operator
        .client
        .execute(
            "const bar = document.querySelector('.actions'); \
             const note = document.querySelector(\"[data-testid='killed-note']\"); \
             const pad = parseFloat(getComputedStyle(bar).paddingBottom); \
             return bar.getBoundingClientRect().bottom - pad - note.getBoundingClientRect().bottom;",
            vec![],
        )
        .await?
        .as_f64()
        .unwrap_or(f64::MAX);
    assert!(band < 16.0, "{band} px of empty bar under the note");
    // The kill is marked on the charts' time axis.
    viewer
        .wait_text("marks-latency_ms", GUARD, |t| t.ends_with(" kill"))
        .await?;

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

    // A note typed before ticking goes with the check; a viewer has no note box.
    assert!(!viewer.has("item-preflight-migration-note").await);
    operator
        .fill("item-preflight-migration-note", "migration 42 applied")
        .await?;
    // Timed in the pages, as the kill above: from the click to the other screen's change.
    let item = "#item-preflight-migration";
    operator.watch_click(item).await?;
    viewer
        .watch_text(who, Shows::StartsWith("demo-operator · "))
        .await?;
    operator
        .client
        .find(fantoccini::Locator::Css(item))
        .await?
        .click()
        .await?;
    let clicked = operator.clicked_at(item).await?;
    let shown = viewer.text_seen_at(who, GUARD).await? - clicked;
    println!("check to the other browser: {shown} ms");
    assert!(
        shown < 2_000,
        "the other browser showed the check {shown} ms after the click"
    );
    let note = viewer.text(who).await.unwrap_or_default();
    assert!(note.ends_with(" · migration 42 applied"), "{note}");
    let checklist = viewer.text("checklist-preflight").await.unwrap_or_default();
    assert!(checklist.contains("(1/7)"), "{checklist}");
    operator.close().await;
    viewer.close().await;
    Ok(())
}

/// Checks every item the first stage requires (as the role each item names, else an
/// operator) and starts the rollout, through the API.
async fn start_through_the_api(demo: &Demo, id: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let api = format!("{}/api/rollouts/{id}", demo.url);
    let snapshot: serde_json::Value = http
        .get(&api)
        .bearer_auth(demo.token("viewer"))
        .send()
        .await?
        .json()
        .await?;
    let first = snapshot["plan"]["stages"][0]["id"].clone();
    for list in snapshot["plan"]["checklists"].as_array().unwrap() {
        if list["required_for"] != first {
            continue;
        }
        for item in list["items"].as_array().unwrap() {
            let role = item["role"].as_str().unwrap_or("operator");
            let url = format!(
                "{api}/checklists/{}/items/{}",
                list["id"].as_str().unwrap(),
                item["id"].as_str().unwrap()
            );
            let response = http
                .post(url)
                .bearer_auth(demo.token(role))
                .json(&serde_json::json!({}))
                .send()
                .await?;
            anyhow::ensure!(response.status().is_success(), "{}", response.text().await?);
        }
    }
    let response = http
        .post(format!("{api}/start"))
        .bearer_auth(demo.token("operator"))
        .json(&serde_json::json!({}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "{}", response.text().await?);
    Ok(())
}

#[tokio::test]
async fn progress_says_what_blocks_it_and_a_lead_overrides_kills_resumes_and_approves()
-> anyhow::Result<()> {
    let demo = Demo::start()?;
    start_through_the_api(&demo, "spiralogic").await?;
    start_through_the_api(&demo, "hal9-shadow").await?;
    let lead = Browser::start().await?;
    lead.sign_in(&format!("{}/r/spiralogic", demo.url), demo.token("lead"))
        .await?;
    lead.wait_text("phase", Duration::from_secs(15), |t| t == "RUNNING")
        .await?;
    // Gates need an hour of hold: progress is disabled and the page says why.
    let blockers = lead
        .wait_text("progress-blockers", Duration::from_secs(10), |t| {
            t.contains("gate p95-latency has held")
        })
        .await?;
    assert!(blockers.starts_with("Progress is blocked:"), "{blockers}");
    let progress = lead
        .client
        .find(fantoccini::Locator::Css("[data-testid='progress']"))
        .await?;
    assert!(progress.attr("disabled").await?.is_some());

    // A decision changes nothing and is kept with its reason (HAL9's decision log). The
    // dialog starts with no decision chosen (a hurried Enter records nothing) and is not
    // dressed as the kill switch.
    lead.click("decide").await?;
    lead.fill("decide-reason", "hold the canary 30m more")
        .await?;
    let unchosen = lead
        .client
        .execute(
            "const c = document.querySelector(\"[data-testid='decide-confirm']\"); \
             const d = c.closest('form'); \
             return [document.querySelector(\"[data-testid='decision']\").value, c.disabled, \
                     c.classList.contains('kill'), getComputedStyle(d).borderTopColor];",
            vec![],
        )
        .await?;
    assert_eq!(unchosen[0], "", "{unchosen}");
    assert_eq!(unchosen[1], true, "no decision, no Record: {unchosen}");
    assert_eq!(unchosen[2], false, "{unchosen}");
    assert_ne!(
        unchosen[3], "rgb(185, 28, 28)",
        "styled like the kill: {unchosen}"
    );
    lead.client
        .find(fantoccini::Locator::Css(
            "[data-testid='decision'] option[value='extend']",
        ))
        .await?
        .click()
        .await?;
    lead.click("decide-confirm").await?;
    lead.wait_text("timeline", Duration::from_secs(10), |t| {
        t.contains("decide extend by demo-lead (lead) “hold the canary 30m more”")
    })
    .await?;
    assert_eq!(lead.text("phase").await.as_deref(), Some("RUNNING"));
    // The timeline narrows to decisions, which stand out, and back.
    lead.click("timeline-decisions").await?;
    let decisions = lead
        .wait_text("timeline", Duration::from_secs(10), |t| {
            !t.contains("start by")
        })
        .await?;
    assert!(
        decisions.contains("decide extend by demo-lead"),
        "{decisions}"
    );
    let marked = lead
        .client
        .execute(
            "return getComputedStyle(document.querySelector('.timeline .event.decide')).borderLeftStyle",
            vec![],
        )
        .await?;
    assert_eq!(marked, "solid");
    lead.click("timeline-all").await?;
    lead.wait_text("timeline", Duration::from_secs(10), |t| {
        t.contains("start by")
    })
    .await?;

    // The lead overrides p95-latency with a reason; its blocker goes, the timeline keeps why.
    lead.click("override").await?;
    lead.client
        .find(fantoccini::Locator::Css(
            "[data-testid='override-gate'] option[value='p95-latency']",
        ))
        .await?
        .click()
        .await?;
    let confirm = lead
        .client
        .find(fantoccini::Locator::Css("[data-testid='override-confirm']"))
        .await?;
    assert!(confirm.attr("disabled").await?.is_some(), "a reason first");
    lead.fill("override-reason", "p95 skewed by the nightly batch")
        .await?;
    lead.click("override-confirm").await?;
    lead.wait_text("progress-blockers", GUARD, |t| {
        !t.contains("p95-latency") && t.contains("p50-latency")
    })
    .await?;
    lead.wait_text("timeline", GUARD, |t| {
        t.contains("p95 skewed by the nightly batch")
    })
    .await?;
    lead.wait_text("marks-latency_ms", GUARD, |t| {
        t.contains(" start canary · ") && t.ends_with(" override p95-latency")
    })
    .await?;

    // After a kill, resuming takes a typed reason too: the dialog says where traffic returns,
    // has the keyboard, and Escape closes it without resuming.
    lead.click("kill").await?;
    lead.fill("kill-reason", "drill").await?;
    lead.click("kill-confirm").await?;
    lead.wait_text("phase", GUARD, |t| t == "KILLED").await?;
    lead.click("resume").await?;
    let title = lead
        .wait_text("resume-title", GUARD, |t| !t.is_empty())
        .await?;
    assert!(title.contains("returns to canary (10%)"), "{title}");
    let focused = lead.client.active_element().await?;
    assert_eq!(
        focused.attr("data-testid").await?.as_deref(),
        Some("resume-reason")
    );
    // Tab goes round inside the dialog, never out of it.
    for _ in 0..5 {
        let here = lead.client.active_element().await?;
        here.send_keys("\u{E004}").await?;
        let now = lead.client.active_element().await?;
        let id = now.attr("data-testid").await?.unwrap_or_default();
        assert!(
            id.starts_with("resume-"),
            "focus left the dialog for {id:?}"
        );
    }
    // Escape from anywhere in it (here, a button) closes it.
    let focused = lead.client.active_element().await?;
    focused.send_keys("\u{E00C}").await?;
    let deadline = std::time::Instant::now() + GUARD;
    while lead.has("resume-reason").await {
        assert!(
            std::time::Instant::now() < deadline,
            "Escape closes the dialog"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The focus is back on the button that opened it.
    let back = lead.client.active_element().await?;
    assert_eq!(back.attr("data-testid").await?.as_deref(), Some("resume"));
    assert_eq!(lead.text("phase").await.as_deref(), Some("KILLED"));
    lead.click("resume").await?;
    let confirm = lead
        .client
        .find(fantoccini::Locator::Css("[data-testid='resume-confirm']"))
        .await?;
    assert!(confirm.attr("disabled").await?.is_some(), "a reason first");
    lead.fill("resume-reason", "drill over").await?;
    lead.click("resume-confirm").await?;
    lead.wait_text("phase", GUARD, |t| t == "RUNNING").await?;
    lead.wait_text("timeline", GUARD, |t| {
        t.contains("resume by demo-lead (lead) “drill over”")
    })
    .await?;

    // The lead makes a read-only link; a stakeholder who opens it sees the rollout, the
    // read-only marker, and no controls at all.
    lead.click("share-create").await?;
    let link = lead
        .client
        .wait()
        .for_element(fantoccini::Locator::Css("[data-testid='share-link']"))
        .await?
        .prop("value")
        .await?
        .unwrap_or_default();
    assert!(link.starts_with(&format!("{}/s/", demo.url)), "{link}");
    let stakeholder = Browser::start().await?;
    stakeholder.goto(&link).await?;
    stakeholder
        .wait_text("read-only", Duration::from_secs(15), |t| t == "read-only")
        .await?;
    stakeholder
        .wait_text("phase", Duration::from_secs(10), |t| t == "RUNNING")
        .await?;
    for control in [
        "kill",
        "resume",
        "pause",
        "progress",
        "override",
        "share-create",
    ] {
        assert!(
            !stakeholder.has(control).await,
            "a stakeholder has no {control}"
        );
    }
    stakeholder.close().await;

    // hal9-shadow needs a lead's sign-off to enter canary.
    lead.goto(&format!("{}/r/hal9-shadow", demo.url)).await?;
    lead.wait_text("signoff", Duration::from_secs(15), |t| {
        t.ends_with(": 0 of 1 approvals")
    })
    .await?;
    lead.click("approve").await?;
    lead.wait_text("signoff", GUARD, |t| {
        t.ends_with(": 1 of 1 approvals (demo-lead)")
    })
    .await?;
    assert!(!lead.has("approve").await, "one approval per person");
    lead.screenshot("override-approve").await?;
    lead.close().await;
    Ok(())
}

/// A plan's own role is shown by the title the plan gives it, as people say it.
#[tokio::test]
async fn a_plan_role_is_shown_by_its_title() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let viewer = Browser::start().await?;
    viewer
        .sign_in(&format!("{}/r/lens-v1", demo.url), demo.token("viewer"))
        .await?;
    viewer
        .wait_text(
            "item-before-rc-security-who",
            Duration::from_secs(15),
            |t| t == "needs Security team",
        )
        .await?;
    viewer.close().await;
    Ok(())
}
