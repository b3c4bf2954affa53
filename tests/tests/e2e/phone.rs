//! A stakeholder's phone at 390 x 844: the share view and the rollout page fit the screen
//! (nothing wider than it, no sideways scrolling), the header's words do not print over each
//! other, and charts stay tall enough to read.

use std::time::Duration;

use cutover_e2e::{Browser, Demo};

/// A guard, not a claim: a loaded CI machine can take seconds per ChromeDriver round trip.
const GUARD: Duration = Duration::from_secs(20);

/// What a person would see go wrong on a small screen, measured in the page: the viewport, the
/// page's scroll width, every visible element that runs past the right edge, every pair of
/// header text boxes that overlap, and the shortest chart.
const LAYOUT: &str = r#"
const W = innerWidth;
const visible = (e) => {
  const r = e.getBoundingClientRect();
  const s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
};
const wide = [];
for (const e of document.querySelectorAll('body *')) {
  if (!visible(e)) continue;
  const r = e.getBoundingClientRect();
  if (r.right > W + 1 || r.left < -1) wide.push(`${e.tagName}.${e.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
}
const words = [...document.querySelectorAll('header *, div.who *')]
  .filter((e) => visible(e) && e.children.length === 0 && e.textContent.trim() !== '');
const overlaps = [];
for (let i = 0; i < words.length; i++) {
  for (let j = i + 1; j < words.length; j++) {
    const a = words[i].getBoundingClientRect(), b = words[j].getBoundingClientRect();
    const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (x > 1 && y > 1) overlaps.push(`"${words[i].textContent.trim()}" / "${words[j].textContent.trim()}"`);
  }
}
const charts = [...document.querySelectorAll('canvas')].map((c) => c.getBoundingClientRect().height);
return { width: W, scroll: document.documentElement.scrollWidth, wide, overlaps,
         shortest: charts.length ? Math.min(...charts) : null };
"#;

async fn check_fits(phone: &Browser, what: &str) -> anyhow::Result<()> {
    check_fits_width(phone, what, 390, true).await
}

/// The checks above at `width`; `charts`: whether the page draws full charts (not sparklines).
async fn check_fits_width(
    phone: &Browser,
    what: &str,
    width: u32,
    charts: bool,
) -> anyhow::Result<()> {
    let layout = phone.client.execute(LAYOUT, vec![]).await?;
    assert_eq!(
        layout["width"], width,
        "{what}: the page is laid out for the screen's width: {layout}"
    );
    // At most the width: a desktop's vertical scroll bar takes some of it.
    assert!(
        layout["scroll"]
            .as_u64()
            .is_some_and(|s| s <= u64::from(width)),
        "{what}: no sideways scrolling: {layout}"
    );
    assert_eq!(
        layout["wide"],
        serde_json::json!([]),
        "{what}: nothing wider than the screen"
    );
    assert_eq!(
        layout["overlaps"],
        serde_json::json!([]),
        "{what}: header words apart"
    );
    let shortest = layout["shortest"].as_f64().unwrap_or(0.0);
    assert!(
        !charts || shortest >= 170.0,
        "{what}: charts tall enough to read: {layout}"
    );
    Ok(())
}

#[tokio::test]
async fn the_share_view_and_the_rollout_page_fit_a_phone() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let phone = Browser::start_phone(390, 844).await?;
    phone.goto(demo.token("stakeholder")).await?;
    phone
        .wait_text("read-only", GUARD, |t| t == "read-only")
        .await?;
    phone.wait_text("health", GUARD, |t| !t.is_empty()).await?;
    // What sits below the first screen renders a frame later: wait for the folded details.
    phone.wait_text("share-details", GUARD, |_| true).await?;
    check_fits(&phone, "share view").await?;
    // The engineering detail is folded away, and opens on asking.
    let open = phone
        .client
        .execute(
            "const d = document.querySelector(\"[data-testid='share-details']\"); \
             return d ? [d.open, document.querySelector(\"[data-testid='timeline']\").checkVisibility()] : null;",
            vec![],
        )
        .await?;
    assert_eq!(
        open,
        serde_json::json!([false, false]),
        "details folded: {open}"
    );
    phone.screenshot("phone-share-view").await?;
    phone
        .client
        .find(fantoccini::Locator::Css(
            "[data-testid='share-details'] summary",
        ))
        .await?
        .click()
        .await?;
    phone
        .wait_text("gate-p95-latency", GUARD, |t| {
            t.contains("PASS") || t.contains("FAIL") || t.contains("NO DATA")
        })
        .await?;
    let shown = phone
        .client
        .execute(
            "return document.querySelector(\"[data-testid='timeline']\").checkVisibility()",
            vec![],
        )
        .await?;
    assert_eq!(shown, true, "the timeline shows once asked for");
    check_fits(&phone, "share view with details").await?;
    phone.close().await;

    let operator = Browser::start_phone(390, 844).await?;
    operator
        .sign_in(
            &format!("{}/r/spiralogic", demo.url),
            demo.token("operator"),
        )
        .await?;
    operator
        .wait_text("phase", GUARD, |t| t == "NOT STARTED")
        .await?;
    operator
        .wait_text("health", GUARD, |t| !t.is_empty())
        .await?;
    check_fits(&operator, "rollout page").await?;
    operator.screenshot("phone-rollout").await?;
    operator.close().await;
    Ok(())
}

/// At desktop widths the header's freshness note and the signed-in name once printed over each
/// other at 1440 px (the name's corner sat over the header, kept clear by a fixed margin):
/// the same checks at the widths people use, on the rollout page and the overview.
#[tokio::test]
async fn the_header_keeps_its_words_apart_at_desktop_widths() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    for (width, height) in [(1280, 800), (1440, 900), (1920, 1080)] {
        let desk = Browser::start_screen(width, height, false).await?;
        desk.sign_in(
            &format!("{}/r/spiralogic", demo.url),
            demo.token("operator"),
        )
        .await?;
        desk.wait_text("freshness", GUARD, |t| t.starts_with("last update"))
            .await?;
        check_fits_width(&desk, &format!("rollout page at {width} px"), width, true).await?;
        desk.goto(&format!("{}/", demo.url)).await?;
        desk.wait_text("health-spiralogic", GUARD, |t| !t.is_empty())
            .await?;
        check_fits_width(&desk, &format!("overview at {width} px"), width, false).await?;
        desk.close().await;
    }
    Ok(())
}
