//! The live stream as a person watches it: after the first whole tick the page draws from
//! deltas, and when one is lost on the way it says it resynced and goes on moving.

use std::time::Duration;

use cutover_e2e::{Browser, Demo};

/// Wraps the browser's `EventSource` so the test can lose one `delta` event on its way to the
/// page, as a flaky network or proxy would: the page must notice the gap, not draw from it.
const LOSSY_NETWORK: &str = r#"
const Real = window.EventSource;
window.cutoverLoseNext = false;
window.cutoverLost = 0;
window.cutoverDeltas = 0;
window.EventSource = function (url, options) {
  const source = new Real(url, options);
  const add = source.addEventListener.bind(source);
  source.addEventListener = (type, listener, o) => add(type, (event) => {
    if (type === 'delta') {
      if (window.cutoverLoseNext) {
        window.cutoverLoseNext = false;
        window.cutoverLost += 1;
        return;
      }
      window.cutoverDeltas += 1;
    }
    listener(event);
  }, o);
  return source;
};
window.EventSource.prototype = Real.prototype;
"#;

/// The latency chart's pixels, hashed: a chart that moves changes it.
const CHART_HASH: &str = r#"
const c = document.querySelector("[data-testid='chart-latency_ms']");
if (!c) return "";
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let h = 0;
for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + d[i + 1] * 7 + d[i + 2] * 13) | 0;
return String(h);
"#;

async fn number(browser: &Browser, script: &str) -> anyhow::Result<i64> {
    Ok(browser
        .client
        .execute(&format!("return {script};"), vec![])
        .await?
        .as_i64()
        .unwrap_or(-1))
}

async fn chart_hash(browser: &Browser) -> anyhow::Result<String> {
    Ok(browser
        .client
        .execute(CHART_HASH, vec![])
        .await?
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Waits until the live request count shows a number other than `than`; returns it.
async fn requests_change(browser: &Browser, than: &str) -> anyhow::Result<String> {
    browser
        .wait_text("live-requests", Duration::from_secs(10), |t| {
            t != than && t.parse::<u64>().is_ok()
        })
        .await
}

#[tokio::test]
async fn the_charts_move_on_deltas_and_recover_after_a_lost_one() -> anyhow::Result<()> {
    let demo = Demo::start_with(&["--backfill", "10m"])?;
    let browser = Browser::start().await?;
    browser.before_every_page(LOSSY_NETWORK).await?;
    browser
        .sign_in(&format!("{}/r/spiralogic", demo.url), demo.token("viewer"))
        .await?;
    let first = requests_change(&browser, "").await?;
    let hash = chart_hash(&browser).await?;

    // Ticks arrive as deltas, and the numbers and the chart move on them.
    let moved = requests_change(&browser, &first).await?;
    let deltas = number(&browser, "window.cutoverDeltas").await?;
    assert!(deltas >= 1, "{deltas} deltas reached the page");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while chart_hash(&browser).await? == hash {
        assert!(
            std::time::Instant::now() < deadline,
            "the latency chart did not move in 15 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!browser.has("resynced").await, "no resync without a loss");

    // One delta lost: the next names a tick the page does not hold.
    browser
        .client
        .execute("window.cutoverLoseNext = true;", vec![])
        .await?;
    browser
        .wait_text("resynced", Duration::from_secs(10), |t| {
            t.contains("resynced")
        })
        .await?;
    // Why, on hover: the tick the change was for and the one the page held.
    let why = browser
        .client
        .execute(
            "return document.querySelector(\"[data-testid='resynced']\").title;",
            vec![],
        )
        .await?;
    let why = why.as_str().unwrap_or_default();
    assert!(why.contains("arrived while this page holds tick"), "{why}");
    assert_eq!(number(&browser, "window.cutoverLost").await?, 1);
    browser
        .screenshot("live-resynced")
        .await
        .map(|p| println!("screenshot: {}", p.display()))?;

    // And it goes on: live, numbers moving, deltas applied again after the whole tick.
    let before = number(&browser, "window.cutoverDeltas").await?;
    let after_resync = requests_change(&browser, &moved).await?;
    requests_change(&browser, &after_resync).await?;
    assert!(number(&browser, "window.cutoverDeltas").await? > before);
    assert_eq!(browser.text("connection").await.as_deref(), Some("live"));
    let freshness = browser.text("freshness").await.unwrap_or_default();
    assert!(freshness.contains("last update"), "{freshness}");
    browser.close().await;
    Ok(())
}
