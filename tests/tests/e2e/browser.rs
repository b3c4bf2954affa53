//! A person opens the dashboard in a browser: the real binary, the real built app, headless
//! Chromium. They see live numbers change without a reload and a chart drawn from data.

use std::time::{Duration, Instant};

use cutover_e2e::{Browser, Demo};

/// Counts canvas pixels near colour (r, g, b) in the canvas with test id `arguments[0]`:
/// proof a line was drawn in that colour, not just a background, axes or "no data".
const COLOUR_PIXELS: &str = r#"
const [id, r, g, b] = arguments;
const c = document.querySelector(`[data-testid='${id}']`);
if (!c) return -1;
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) {
  if (Math.abs(d[i] - r) < 24 && Math.abs(d[i + 1] - g) < 24 && Math.abs(d[i + 2] - b) < 24) n++;
}
return n;
"#;

/// The series colour of a single line or a p95 line.
const LINE: (i64, i64, i64) = (56, 189, 248);
/// Gate limits, fixed or moving.
const LIMIT: (i64, i64, i64) = (248, 113, 113);

/// Pixels of `colour` in `canvas`, polled until there are at least `min` or `timeout` passes.
async fn colour_pixels(
    browser: &Browser,
    canvas: &str,
    (r, g, b): (i64, i64, i64),
    min: i64,
    timeout: Duration,
) -> anyhow::Result<i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = browser
            .client
            .execute(
                COLOUR_PIXELS,
                vec![canvas.into(), r.into(), g.into(), b.into()],
            )
            .await?
            .as_i64()
            .unwrap_or(-1);
        if n >= min || Instant::now() > deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_dashboard_updates_live_and_draws_its_chart() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let browser = Browser::start().await?;

    browser
        .sign_in(&format!("{}/r/spiralogic", demo.url), demo.token("viewer"))
        .await?;
    browser
        .wait_text("whoami", Duration::from_secs(15), |t| {
            t == "demo-viewer · viewer"
        })
        .await?;

    // A fresh page load: the session cookie signs it in without asking again.
    let opened = Instant::now();
    browser.goto(&format!("{}/r/spiralogic", demo.url)).await?;
    browser
        .wait_text("rollout-title", Duration::from_secs(15), |t| {
            t.contains("Spiralogic")
        })
        .await?;
    let first = browser
        .wait_text("live-requests", Duration::from_secs(15), |t| {
            t.parse::<u64>().is_ok()
        })
        .await?;
    println!(
        "time from navigation to first live value: {:?}",
        opened.elapsed()
    );

    // The simulator adds events every 200 ms and the server ticks every second.
    let changed = browser
        .wait_text("live-requests", Duration::from_secs(15), |t| {
            t != first && t.parse::<u64>().is_ok()
        })
        .await?;
    assert_ne!(first, changed);
    assert_eq!(browser.text("connection").await.as_deref(), Some("live"));

    let pixels = colour_pixels(
        &browser,
        "chart-latency_ms",
        LINE,
        12,
        Duration::from_secs(5),
    )
    .await?;
    assert!(pixels >= 12, "the latency chart has {pixels} line pixels");

    // Every kind of metric gets its chart, each gate limit shows in the legend.
    for chart in [
        "chart-latency_ms",
        "chart-mode",
        "chart-error",
        "chart-cache_hit",
    ] {
        assert!(browser.has(chart).await, "{chart} is missing");
    }
    let legend = browser
        .wait_text("panel-latency_ms", Duration::from_secs(5), |t| {
            t.contains("p95-latency limit 700ms")
        })
        .await?;
    assert!(legend.contains("p50") && legend.contains("p99"), "{legend}");
    let mix = browser.text("panel-mode").await.unwrap_or_default();
    assert!(
        mix.contains("full") && mix.contains("fallback-rate limit 3%"),
        "{mix}"
    );
    assert!(!browser.has("nodata-latency_ms").await, "latency has data");
    // "lite" is a normal mode: its swatch is not the amber people read as a warning.
    let lite = browser
        .client
        .execute(
            "const item = [...document.querySelectorAll(\"[data-testid='panel-mode'] .legend-item\")] \
               .find(i => i.textContent.trim() === 'lite'); \
             return item ? getComputedStyle(item.querySelector('.swatch')).backgroundColor : null;",
            vec![],
        )
        .await?;
    assert!(lite.is_string(), "no lite in the mode legend");
    assert_ne!(lite, "rgb(250, 204, 21)", "lite painted amber");

    // The quality gate compares the canary with the baseline: its own chart shows both and
    // the limit the baseline sets, moving with it (dashed, in the threshold colour).
    let quality = browser
        .wait_text("panel-gate-quality", Duration::from_secs(5), |t| {
            t.contains("canary mean") && t.contains("baseline mean")
        })
        .await?;
    assert!(
        quality.contains("Quality >= baseline - 2pp")
            && quality.contains("limit mean(quality{variant=\"baseline\"}) - 0.02"),
        "{quality}"
    );
    assert!(
        !browser.has("nodata-gate-quality").await,
        "the gate chart has data"
    );
    let limit_pixels = colour_pixels(
        &browser,
        "chart-gate-quality",
        LIMIT,
        12,
        Duration::from_secs(5),
    )
    .await?;
    assert!(
        limit_pixels >= 12,
        "the moving limit has {limit_pixels} pixels"
    );

    // Each gate row draws what it judges over the live range (10 s points), with its limit.
    let deadline = Instant::now() + Duration::from_secs(15);
    let spark = loop {
        let spark = browser
            .client
            .execute(
                r#"const s = document.querySelector("[data-testid='spark-p95-latency']");
                   if (!s) return null;
                   const points = [...s.querySelectorAll('polyline')]
                     .map(p => p.getAttribute('points').trim().split(/\s+/).length)
                     .reduce((a, b) => a + b, 0);
                   return [points, s.querySelectorAll('line.spark-limit').length,
                           s.getAttribute('aria-label')];"#,
                vec![],
            )
            .await?;
        if spark[0].as_i64().unwrap_or(0) >= 2 || Instant::now() > deadline {
            break spark;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        spark[0].as_i64().unwrap_or(0) >= 2,
        "sparkline points: {spark}"
    );
    assert_eq!(spark[1], 1, "one limit line: {spark}");
    assert!(
        spark[2]
            .as_str()
            .unwrap_or_default()
            .ends_with("over the last 15 minutes"),
        "{spark}"
    );

    // A longer range comes from the server's history and still draws the data.
    browser.click("range-1h").await?;
    browser
        .wait_text("range-note", Duration::from_secs(5), |t| {
            t == "last 1h, refreshed every 10 s"
        })
        .await?;
    // The demo's first minute is a sliver at the right end of an hour: it takes a few 10 s
    // points (and the page's 10 s refresh) to be a line, longer on a loaded machine.
    let pixels = colour_pixels(
        &browser,
        "chart-latency_ms",
        LINE,
        3,
        Duration::from_secs(30),
    )
    .await?;
    assert!(pixels >= 3, "the 1h chart has {pixels} line pixels");
    // A week reaches the store's 10 min buckets: the server answers it (no "cannot load").
    browser.click("range-7d").await?;
    browser
        .wait_text("range-note", Duration::from_secs(15), |t| {
            t == "last 7d, refreshed every 10 s"
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let note = browser.text("range-note").await;
    assert_eq!(
        note.as_deref(),
        Some("last 7d, refreshed every 10 s"),
        "the week loads"
    );

    let shot = browser.screenshot("dashboard").await?;
    println!("screenshot: {}", shot.display());
    browser.close().await;
    Ok(())
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_a_stakeholder_link_opens_read_only() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let browser = Browser::start().await?;
    browser.sign_in(&demo.url, "cut_not-a-real-token").await?;
    browser
        .wait_text("sign-in-error", Duration::from_secs(10), |t| {
            t.contains("unknown or revoked token")
        })
        .await?;

    browser.goto(demo.token("stakeholder")).await?;
    browser
        .wait_text("whoami", Duration::from_secs(15), |t| {
            t == "stakeholder · read-only"
        })
        .await?;
    browser
        .wait_text("rollout-title", Duration::from_secs(15), |t| {
            t.contains("Spiralogic")
        })
        .await?;
    assert!(
        browser
            .client
            .current_url()
            .await?
            .path()
            .ends_with("/r/spiralogic")
    );
    // The link's session is bound to its rollout: the page opens on the stream alone, its
    // title from the stream, without first waiting on the list of rollouts.
    let listed = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource') \
             .filter(e => new URL(e.name).pathname === '/api/rollouts').length;",
            vec![],
        )
        .await?;
    assert_eq!(
        listed,
        serde_json::json!(0),
        "the share page fetched the rollouts list"
    );
    // Who is signed in and the stream were asked for by the page's boot script while the app
    // downloaded; the app took both over instead of asking again.
    let asked = browser
        .client
        .execute(
            "return [performance.getEntriesByType('resource') \
               .filter(e => new URL(e.name).pathname === '/api/session').length, \
             performance.getEntriesByType('mark').map(m => m.name) \
               .filter(n => n.startsWith('cutover:stream-'))];",
            vec![],
        )
        .await?;
    assert_eq!(
        asked,
        serde_json::json!([1, ["cutover:stream-adopted"]]),
        "session requests, and how the stream was opened"
    );
    // A link is not an account: no "Sign out" to strand the stakeholder, and no way
    // to the overview of rollouts it cannot see.
    assert!(
        !browser.has("sign-out").await,
        "a share link offers Sign out"
    );
    assert!(!browser.has("home").await);
    browser.close().await;
    Ok(())
}

#[tokio::test]
async fn the_overview_shows_every_rollout_with_its_health_and_opens_one() -> anyhow::Result<()> {
    // Ten minutes of healthy history fill every window: a gate judged on the first few
    // hundred events can fail by chance (2 errors in 200 is 1% against a 0.75% limit).
    let demo = Demo::start_with(&["--backfill", "10m"])?;
    let browser = Browser::start().await?;
    browser
        .sign_in(&format!("{}/", demo.url), demo.token("viewer"))
        .await?;
    for id in [
        "hal9-shadow",
        "lens-v1",
        "pags-cutover",
        "semantic-mirror",
        "spiralogic",
    ] {
        browser
            .wait_text(&format!("health-{id}"), Duration::from_secs(15), |t| {
                ["HEALTHY", "DEGRADED", "CRITICAL", "KILLED"].contains(&t)
            })
            .await?;
    }
    let card = browser
        .wait_text("card-spiralogic", Duration::from_secs(5), |t| {
            t.contains("not started")
        })
        .await?;
    assert!(
        card.contains("Spiralogic orchestrator launch") && card.contains("0%"),
        "{card}"
    );
    // Simulated traffic is aimed inside every gate: the card turns healthy by itself.
    browser
        .wait_text("health-spiralogic", Duration::from_secs(20), |t| {
            t == "HEALTHY"
        })
        .await?;
    // Seven of eight: the quality comparison is not yet known before its stage begins (it
    // reads canary against baseline from the stage's entry), and never counts as a pass.
    browser
        .wait_text("card-spiralogic", Duration::from_secs(5), |t| {
            t.contains("gates 7 of 8 passing")
        })
        .await?;
    // What a war room scans on a card: where in the plan, what blocks it, the trend.
    assert_eq!(
        browser.text("progress-spiralogic").await.as_deref(),
        Some("3 stages")
    );
    let blocker = browser.text("blocker-spiralogic").await.unwrap_or_default();
    assert!(
        blocker.starts_with("blocked: checklist preflight has 7 open item(s)"),
        "{blocker}"
    );
    let trend = browser
        .client
        .wait()
        .for_element(fantoccini::Locator::Css("[data-testid='trend-spiralogic']"))
        .await?
        .attr("aria-label")
        .await?
        .unwrap_or_default();
    assert!(
        trend.starts_with("p95 ") && trend.contains("over the last 15 minutes, now "),
        "{trend}"
    );
    // A card with fewer lines than its row's tallest keeps them together: no line floats
    // away from the one above it (the room is left below). Measured on what each line
    // holds, not its box, which a stretched grid row makes taller than its text.
    let gaps = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll('.card')).map(card => { \
               const rows = Array.from(card.children).map(c => { \
                   const r = document.createRange(); r.selectNodeContents(c); \
                   return r.getBoundingClientRect(); }).filter(r => r.height > 0); \
               let widest = 0; \
               for (let i = 1; i < rows.length; i++) widest = Math.max(widest, rows[i].top - rows[i - 1].bottom); \
               return widest; });",
            vec![],
        )
        .await?;
    let widest = gaps
        .as_array()
        .map(|g| g.iter().filter_map(|v| v.as_f64()).fold(0.0, f64::max))
        .unwrap_or(f64::MAX);
    println!("widest gap between a card's lines, per card: {gaps}");
    assert!(
        widest < 12.0,
        "a card's lines stand {widest} px apart: {gaps}"
    );
    browser.screenshot("overview").await?;

    browser.click("card-spiralogic").await?;
    browser
        .wait_text("rollout-title", Duration::from_secs(10), |t| {
            t.contains("Spiralogic")
        })
        .await?;
    assert!(
        browser
            .client
            .current_url()
            .await?
            .path()
            .ends_with("/r/spiralogic")
    );
    browser.close().await;
    Ok(())
}

/// The app's wasm and JS as the page loaded them: name, bytes on the wire and bytes decoded.
const APP_TRANSFERS: &str = r#"
return performance.getEntriesByType('resource')
  .filter(e => /\/cutover-app-[0-9a-f]+(_bg\.wasm|\.js)$/.test(e.name))
  .map(e => [e.name, e.encodedBodySize, e.decodedBodySize]);
"#;

/// The Content-Encoding the server sends the browser for `arguments[0]` (fetched afresh).
const CONTENT_ENCODING: &str = r#"
return fetch(arguments[0], { cache: 'no-store' })
  .then(r => r.arrayBuffer().then(() => r.headers.get('content-encoding')));
"#;

#[tokio::test]
async fn the_browser_gets_the_app_brotli_compressed_and_it_still_draws() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let browser = Browser::start().await?;
    browser
        .sign_in(&format!("{}/", demo.url), demo.token("viewer"))
        .await?;
    // The app runs: the overview shows a rollout and its health.
    browser
        .wait_text("health-spiralogic", Duration::from_secs(15), |t| {
            ["HEALTHY", "DEGRADED", "CRITICAL", "KILLED"].contains(&t)
        })
        .await?;
    let transfers = browser.client.execute(APP_TRANSFERS, vec![]).await?;
    let transfers: Vec<(String, u64, u64)> = serde_json::from_value(transfers)?;
    let wasm = transfers
        .iter()
        .find(|(name, ..)| name.ends_with("_bg.wasm"))
        .unwrap_or_else(|| panic!("no wasm among {transfers:?}"));
    let js = transfers
        .iter()
        .find(|(name, ..)| name.ends_with(".js"))
        .unwrap_or_else(|| panic!("no JS among {transfers:?}"));
    for (name, encoded, decoded) in [wasm, js] {
        // Compressed on the wire: well under half (brotli makes about a third).
        assert!(
            *encoded > 0 && encoded * 2 < *decoded,
            "{name}: {encoded} bytes on the wire for {decoded}"
        );
    }
    let encoding = browser
        .client
        .execute(CONTENT_ENCODING, vec![wasm.0.clone().into()])
        .await?;
    assert_eq!(encoding.as_str(), Some("br"), "the wasm's Content-Encoding");
    browser.close().await;
    Ok(())
}

/// A first visit is not an error: the page asks who is signed in and is told "nobody" without
/// a failed request, so the browser's console stays clean (it logs every 4xx as an error).
#[tokio::test]
async fn a_first_visit_makes_no_request_that_fails() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let browser = Browser::start().await?;
    browser.goto(&format!("{}/", demo.url)).await?;
    browser
        .wait_text("sign-in", Duration::from_secs(15), |t| t == "Sign in")
        .await?;
    let failed = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource')
               .filter((e) => e.responseStatus >= 400)
               .map((e) => `${e.responseStatus} ${e.name}`);",
            vec![],
        )
        .await?;
    assert_eq!(
        failed,
        serde_json::json!([]),
        "requests that failed on a first visit"
    );
    let asked = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource')
               .filter((e) => e.name.endsWith('/api/session')).map((e) => e.responseStatus);",
            vec![],
        )
        .await?;
    assert_eq!(
        asked,
        serde_json::json!([204]),
        "it did ask who is signed in"
    );
    browser.close().await;
    Ok(())
}

/// Records every Content-Security-Policy violation the page reports from now on.
pub(crate) const WATCH_CSP: &str = r#"
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || ''));
});
return true;
"#;

/// The rollout page breaks none of its own Content-Security-Policy while it draws charts with
/// markers (plotters once measured marker labels with an inline-styled element: dozens of
/// violations a page, and labels 0 wide laid over each other).
#[tokio::test]
async fn a_rollout_page_draws_without_a_csp_violation() -> anyhow::Result<()> {
    let plans = tempfile::tempdir()?;
    let plan = crate::fixtures::two_stage_plan("csp", "Content policy", "");
    std::fs::write(plans.path().join("csp.toml"), plan)?;
    let dir = plans.path().to_string_lossy().to_string();
    let demo = Demo::start_with(&["--plans", &dir])?;
    let browser = Browser::start().await?;
    let page = format!("{}/r/csp", demo.url);
    browser.sign_in(&page, demo.token("operator")).await?;
    browser
        .wait_text("phase", Duration::from_secs(15), |t| t == "NOT STARTED")
        .await?;
    browser.client.execute(WATCH_CSP, vec![]).await?;
    // A start marks every chart: its label is measured and drawn at every redraw.
    browser.click("start").await?;
    browser
        .wait_text("marks-latency_ms", Duration::from_secs(15), |t| {
            t.contains("start")
        })
        .await?;
    // Several ticks, each redrawing every chart with its marker.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let seen = browser
        .client
        .execute("return window.__csp;", vec![])
        .await?;
    let violations = seen.as_array().map_or(0, Vec::len);
    println!("CSP violations on the rollout page over 4 s with a marker: {violations}");
    assert_eq!(violations, 0, "{seen}");
    browser.close().await;
    Ok(())
}

/// "cutover" in a rollout page's header leads back to the overview.
#[tokio::test]
async fn the_header_leads_back_to_the_overview() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let browser = Browser::start().await?;
    browser
        .sign_in(&format!("{}/r/spiralogic", demo.url), demo.token("viewer"))
        .await?;
    browser
        .wait_text("rollout-title", Duration::from_secs(15), |t| {
            t.contains("Spiralogic")
        })
        .await?;
    assert!(browser.has("sign-out").await);
    browser.click("home").await?;
    browser
        .wait_text("health-spiralogic", Duration::from_secs(15), |t| {
            !t.is_empty()
        })
        .await?;
    assert_eq!(browser.client.current_url().await?.path(), "/");
    browser.close().await;
    Ok(())
}

/// A blocked Start looks disabled (faded, a not-allowed cursor) and says why on hover, before
/// anyone presses it.
#[tokio::test]
async fn a_blocked_action_looks_disabled_and_says_why_on_hover() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    let browser = Browser::start().await?;
    let page = format!("{}/r/spiralogic", demo.url);
    browser.sign_in(&page, demo.token("operator")).await?;
    browser
        .wait_text("progress-blockers", Duration::from_secs(15), |t| {
            t.contains("checklist preflight")
        })
        .await?;
    let seen = browser
        .client
        .execute(
            "const b = document.querySelector(\"[data-testid='start']\"); \
             const s = getComputedStyle(b); \
             return [b.disabled, s.opacity, s.cursor, b.title];",
            vec![],
        )
        .await?;
    let seen = seen.as_array().cloned().unwrap_or_default();
    assert_eq!(seen[0], true, "{seen:?}");
    let opacity: f64 = seen[1].as_str().unwrap_or("1").parse()?;
    assert!(opacity <= 0.5, "a disabled Start at full opacity: {seen:?}");
    assert_eq!(seen[2], "not-allowed", "{seen:?}");
    let title = seen[3].as_str().unwrap_or_default();
    assert!(
        title.starts_with("Start is blocked: checklist preflight has 7 open item(s)"),
        "{title}"
    );
    browser.close().await;
    Ok(())
}
