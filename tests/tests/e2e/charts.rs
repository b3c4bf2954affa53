//! Charts a Grafana user trusts, on a 1440x900 laptop: one moment under the pointer is marked
//! and read out on every chart at once, a range dragged out on one chart zooms them all to
//! those absolute times until reset, and none of it breaks the page's content policy.

use std::time::Duration;

use cutover_e2e::{Browser, Demo};
use serde_json::{Value, json};

/// The viewport box of a chart's canvas: left, top, width, height.
async fn rect(browser: &Browser, id: &str) -> anyhow::Result<(f64, f64, f64, f64)> {
    let r = browser
        .client
        .execute(
            "const r = document.querySelector(`[data-testid='${arguments[0]}']`).getBoundingClientRect();
             return [r.left, r.top, r.width, r.height];",
            vec![json!(format!("chart-{id}"))],
        )
        .await?;
    let n = |i: usize| r[i].as_f64().unwrap_or(0.0);
    Ok((n(0), n(1), n(2), n(3)))
}

async fn mouse(
    browser: &Browser,
    kind: &str,
    x: f64,
    y: f64,
    pressed: bool,
) -> anyhow::Result<Value> {
    let button = if kind == "mouseMoved" && !pressed {
        "none"
    } else {
        "left"
    };
    browser
        .cdp(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": button, "buttons": u8::from(pressed || kind == "mousePressed"), "clickCount": 1 }),
        )
        .await
}

async fn display(browser: &Browser, testid: &str) -> anyhow::Result<String> {
    let v = browser
        .client
        .execute(
            "const e = document.querySelector(`[data-testid='${arguments[0]}']`);
             return e ? getComputedStyle(e).display : 'absent';",
            vec![json!(testid)],
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn charts_share_a_crosshair_and_zoom_together_by_dragging() -> anyhow::Result<()> {
    let demo = Demo::start_with(&["--backfill", "10m"])?;
    let browser = Browser::start_screen(1440, 900, false).await?;
    browser
        .sign_in(&format!("{}/r/spiralogic", demo.url), demo.token("viewer"))
        .await?;
    browser
        .wait_text("range-note", Duration::from_secs(20), |t| {
            t.contains("live")
        })
        .await?;
    browser
        .client
        .execute(crate::browser::WATCH_CSP, vec![])
        .await?;
    // Ten minutes of history and the live minute: points across the whole chart.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (left, top, width, height) = rect(&browser, "latency_ms").await?;
    anyhow::ensure!(width > 100.0, "the latency chart is {width} px wide");
    let (x, y) = (left + 0.6 * width, top + height / 2.0);
    mouse(&browser, "mouseMoved", x, y, false).await?;
    let latency = browser
        .wait_text("hover-latency_ms", Duration::from_secs(5), |t| {
            t.contains("p95")
        })
        .await?;
    // The same moment, read out on a chart the pointer is not on.
    let moment = |t: &str| t.split(" (").next().unwrap_or_default().to_string();
    let errors = browser
        .wait_text("hover-error", Duration::from_secs(5), |t| !t.is_empty())
        .await?;
    assert_eq!(moment(&latency), moment(&errors), "{latency} / {errors}");
    // A clock time (with its day in front only if it is not today's).
    let time = moment(&latency)
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(time.len(), "12:34:56".len(), "{latency}");
    assert_eq!(display(&browser, "crosshair-error").await?, "block");
    assert_eq!(display(&browser, "crosshair-latency_ms").await?, "block");
    let shot = browser.screenshot("charts-crosshair-1440").await?;
    println!("screenshot: {}", shot.display());

    // Drag across a third of the chart: every chart shows those times, fixed, until reset.
    let (from_x, to_x) = (left + 0.45 * width, left + 0.8 * width);
    mouse(&browser, "mouseMoved", from_x, y, false).await?;
    mouse(&browser, "mousePressed", from_x, y, true).await?;
    for step in 1..=5 {
        let at = from_x + (to_x - from_x) * f64::from(step) / 5.0;
        mouse(&browser, "mouseMoved", at, y, true).await?;
    }
    mouse(&browser, "mouseReleased", to_x, y, false).await?;
    let note = browser
        .wait_text("range-note", Duration::from_secs(10), |t| {
            t.contains("zoomed")
        })
        .await?;
    assert!(note.contains(" to "), "{note}");
    // The zoomed frame covers about a third of the 15 minutes, not all of them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(browser.has("zoom-reset").await);
    // The zoom ends about three minutes ago, and its last point says so: counted from now,
    // not from the end of the zoomed range.
    let (left, top, width, height) = rect(&browser, "latency_ms").await?;
    mouse(
        &browser,
        "mouseMoved",
        left + 0.95 * width,
        top + height / 2.0,
        false,
    )
    .await?;
    let end = browser
        .wait_text("hover-latency_ms", Duration::from_secs(5), |t| {
            t.contains("p95") && !t.starts_with(&moment(&latency))
        })
        .await?;
    let minutes: Option<u32> = end
        .split(" (-")
        .nth(1)
        .and_then(|rest| rest.split("m)").next())
        .and_then(|m| m.parse().ok());
    assert!(
        minutes.is_some_and(|m| (1..=6).contains(&m)),
        "the zoom's last point reads {end}"
    );
    let shot = browser.screenshot("charts-zoomed-1440").await?;
    println!("screenshot: {}", shot.display());
    browser.click("zoom-reset").await?;
    browser
        .wait_text("range-note", Duration::from_secs(10), |t| {
            t == "last 15 minutes, live"
        })
        .await?;
    let seen = browser
        .client
        .execute("return window.__csp;", vec![])
        .await?;
    assert_eq!(
        seen.as_array().map_or(0, Vec::len),
        0,
        "CSP violations: {seen}"
    );
    browser.close().await;
    Ok(())
}

/// Records every Content-Security-Policy violation from the first script of every page on.
const WATCH_CSP_EVERY_PAGE: &str = r#"
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || ''));
});
"#;

/// A page to visit: its name, address, screen (width, height, phone) and what shows it is up.
type Page<'a> = (&'a str, String, (u32, u32, bool), &'a str);

/// No page breaks its own content policy while it lives and draws: the overview and a rollout
/// on a laptop, the wall at 1080p, the stakeholder's share view on a phone.
#[tokio::test]
async fn no_page_breaks_its_content_policy_on_any_screen() -> anyhow::Result<()> {
    let demo = Demo::start_with(&["--backfill", "10m"])?;
    let pages: [Page; 4] = [
        (
            "overview",
            format!("{}/", demo.url),
            (1440, 900, false),
            "health-spiralogic",
        ),
        (
            "rollout",
            format!("{}/r/spiralogic", demo.url),
            (1440, 900, false),
            "phase",
        ),
        (
            "wall",
            format!("{}/r/spiralogic/wall", demo.url),
            (1920, 1080, false),
            "phase",
        ),
        (
            "share",
            demo.token("stakeholder").to_string(),
            (390, 844, true),
            "phase",
        ),
    ];
    for (name, url, (width, height, mobile), shown) in pages {
        let browser = Browser::start_screen(width, height, mobile).await?;
        browser.before_every_page(WATCH_CSP_EVERY_PAGE).await?;
        if name == "share" {
            browser.goto(&url).await?;
        } else {
            browser.sign_in(&url, demo.token("operator")).await?;
        }
        browser
            .wait_text(shown, Duration::from_secs(20), |t| !t.is_empty())
            .await?;
        // Live ticks redraw every chart meanwhile.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let seen = browser
            .client
            .execute("return window.__csp || ['no watcher'];", vec![])
            .await?;
        println!(
            "CSP violations on the {name} page ({width}x{height}): {}",
            seen.as_array().map_or(0, Vec::len)
        );
        assert_eq!(seen, json!([]), "{name}: {seen}");
        browser.close().await;
    }
    Ok(())
}
