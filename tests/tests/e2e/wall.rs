//! The wall screen: large, no controls even for a lead, live, and honest about staleness: a
//! kill shows within two seconds, and when the server goes away the screen says STALE.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use cutover_e2e::{Browser, Demo, Shows};

#[tokio::test]
async fn the_wall_shows_kills_live_and_says_when_it_is_stale() -> anyhow::Result<()> {
    // Full windows from the start, so HEALTHY is not left to the chance of a few events.
    let demo = Demo::start_with(&["--backfill", "10m"])?;
    let wall = Browser::start().await?;
    wall.sign_in(
        &format!("{}/r/spiralogic/wall", demo.url),
        demo.token("lead"),
    )
    .await?;
    wall.wait_text("phase", Duration::from_secs(15), |t| t == "NOT STARTED")
        .await?;
    wall.wait_text("freshness", Duration::from_secs(5), |t| {
        t.starts_with("last update")
    })
    .await?;
    assert!(
        !wall.has("kill").await && !wall.has("start").await,
        "a wall has no controls"
    );
    assert!(
        !wall.has("timeline").await,
        "a wall shows only what matters from across the room"
    );
    wall.wait_text("gates-passing", Duration::from_secs(10), |t| {
        t.ends_with("of 8 gates passing")
    })
    .await?;
    // Health in a word and a shape, not colour alone.
    wall.wait_text("health", Duration::from_secs(20), |t| t == "● HEALTHY")
        .await?;
    wall.screenshot("wall").await?;

    // Timed from the kill's own time (the server's clock) to the wall's DOM change (the page's
    // clock, the same machine's): polling through ChromeDriver would time the polling.
    wall.watch_text("phase", Shows::Is("KILLED")).await?;
    let response = reqwest::Client::new()
        .post(format!("{}/api/rollouts/spiralogic/kill", demo.url))
        .bearer_auth(demo.token("operator"))
        .json(&serde_json::json!({ "reason": "error spike" }))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await?;
    let killed = body["state"]["killed"]["at"]
        .as_i64()
        .with_context(|| format!("no kill time in {body}"))?;
    let shown = wall.text_seen_at("phase", Duration::from_secs(15)).await? - killed;
    println!("kill to wall: {shown} ms");
    assert!(
        shown < 2_000,
        "the wall showed KILLED {shown} ms after the kill"
    );
    assert_eq!(wall.text("health").await.as_deref(), Some("✕ KILLED"));

    let mut demo = demo;
    demo.stop();
    wall.wait_text("freshness", Duration::from_secs(10), |t| {
        t.starts_with("STALE")
    })
    .await?;
    wall.wait_text("connection", Duration::from_secs(5), |t| {
        t == "reconnecting"
    })
    .await?;

    // The server comes back (a deploy, a crash): the wall recovers by itself, still signed
    // in, still showing the kill that was recorded before the restart.
    demo.restart()?;
    let back = Instant::now();
    wall.wait_text("connection", Duration::from_secs(30), |t| t == "live")
        .await?;
    wall.wait_text("freshness", Duration::from_secs(5), |t| {
        t.starts_with("last update")
    })
    .await?;
    wall.wait_text("phase", Duration::from_secs(5), |t| t == "KILLED")
        .await?;
    println!("wall live again {:?} after the restart", back.elapsed());
    for chart in ["chart-latency_ms", "chart-mode", "chart-error"] {
        assert!(wall.has(chart).await, "the wall shows {chart}");
    }
    assert!(!wall.has("range-1h").await, "no range buttons on a wall");
    // Charts are drawn at the size they are shown, not scaled down three across: chart text
    // is as large on the canvas as it is meant to be read.
    let fit = wall
        .client
        .execute(
            r#"const c = document.querySelector("[data-testid='chart-latency_ms']");
               const r = c.getBoundingClientRect();
               return [c.width, Math.round(r.width * devicePixelRatio), r.width];"#,
            vec![],
        )
        .await?;
    let (drawn, shown) = (
        fit[0].as_f64().unwrap_or(0.0),
        fit[1].as_f64().unwrap_or(-9.0),
    );
    assert!(
        (drawn - shown).abs() <= 1.0,
        "canvas {drawn} px for a {shown} px box: {fit}"
    );
    assert!(
        fit[2].as_f64().unwrap_or(0.0) < 700.0,
        "three across: {fit}"
    );
    wall.close().await;
    Ok(())
}

/// A wall whose session ended while the server was away (the user was revoked) does not sit
/// on "reconnecting" for ever: the stream is refused, and the screen asks for a sign-in.
#[tokio::test]
async fn a_wall_whose_session_ended_asks_for_a_sign_in() -> anyhow::Result<()> {
    let mut demo = Demo::start()?;
    let wall = Browser::start().await?;
    wall.sign_in(
        &format!("{}/r/spiralogic/wall", demo.url),
        demo.token("viewer"),
    )
    .await?;
    wall.wait_text("connection", Duration::from_secs(15), |t| t == "live")
        .await?;
    demo.stop();
    let revoked = std::process::Command::new(cutover_e2e::cutover_bin())
        .args(["user", "revoke", "demo-viewer", "--data-dir"])
        .arg(demo.data_dir())
        .status()?;
    assert!(revoked.success());
    demo.restart()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wall.has("token-input").await {
        assert!(
            Instant::now() < deadline,
            "still no sign-in box: {:?}",
            wall.text("connection").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Where anything visible ends below the screen, where the lowest text ends, and how tall the
/// traffic figure's type is, measured in the page.
const BELOW_THE_FOLD: &str = r#"
const H = innerHeight, low = [];
let used = 0;
for (const e of document.querySelectorAll('body *')) {
  const r = e.getBoundingClientRect();
  if (r.height > 0 && r.width > 0 && r.bottom > H + 1) low.push(`${e.tagName}.${e.className} ${Math.round(r.top)}..${Math.round(r.bottom)}`);
  if (r.height > 0 && [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) used = Math.max(used, r.bottom);
}
const traffic = parseFloat(getComputedStyle(document.querySelector('.traffic')).fontSize);
const smallest = (css) => Math.min(...[...document.querySelectorAll(css)].map((e) => parseFloat(getComputedStyle(e).fontSize)));
return { width: innerWidth, height: H, scroll: document.documentElement.scrollHeight, low, used: used / H, traffic: traffic / H,
  legend: smallest('.legend-item'), expression: smallest('.gate-observed'), charts: document.querySelectorAll('canvas').length };
"#;

/// The wall is one screen nobody touches: at 1080p and at 4K everything is above the fold,
/// even for the plan with the most gates (lens-v1, 16), which it condenses into a count.
#[tokio::test]
async fn the_wall_fits_one_screen_at_1080p_and_4k() -> anyhow::Result<()> {
    let demo = Demo::start()?;
    for (width, height) in [(1920u32, 1080u32), (3840, 2160)] {
        let wall = Browser::start_screen(width, height, false).await?;
        wall.sign_in(
            &format!("{}/r/lens-v1/wall", demo.url),
            demo.token("viewer"),
        )
        .await?;
        wall.wait_text("gates-passing", Duration::from_secs(20), |t| {
            t.ends_with("of 16 gates passing")
        })
        .await?;
        let left_out = wall
            .wait_text("board-left-out", Duration::from_secs(10), |t| !t.is_empty())
            .await?;
        assert!(
            left_out.contains("more holding or failing") || left_out.contains("gates held"),
            "16 gates are condensed into a count: {left_out}"
        );
        let layout = wall.client.execute(BELOW_THE_FOLD, vec![]).await?;
        // Taken before the checks, so a failure leaves the picture of what it found.
        wall.screenshot(&format!("wall-{width}x{height}")).await?;
        assert_eq!(
            (&layout["width"], &layout["height"]),
            (&serde_json::json!(width), &serde_json::json!(height)),
            "{layout}"
        );
        assert_eq!(layout["scroll"], height, "the wall never scrolls: {layout}");
        assert_eq!(
            layout["low"],
            serde_json::json!([]),
            "nothing below the fold at {width}x{height}"
        );
        // Read from across the room, the wall grows with its screen: at 4K as at 1080p its
        // text reaches most of the way down, and the traffic figure is as large a share of it.
        let used = layout["used"].as_f64().unwrap_or(0.0);
        assert!(
            used > 0.85,
            "the wall uses {used:.2} of the height at {width}x{height}"
        );
        // Tall charts fill the left side; legends and gate expressions read from across a
        // room: at least 18px at 1080p, as large a share of the screen at 4K.
        assert_eq!(layout["charts"], 3, "{layout}");
        let least = 18.0 * f64::from(height) / 1080.0;
        for what in ["legend", "expression"] {
            let px = layout[what].as_f64().unwrap_or(0.0);
            assert!(
                px >= least - 0.5,
                "{what} text is {px}px at {width}x{height}"
            );
        }
        let traffic = layout["traffic"].as_f64().unwrap_or(0.0);
        assert!(
            traffic > 0.035,
            "the traffic figure is {traffic:.3} of the height at {width}x{height}"
        );
        wall.close().await;
    }
    Ok(())
}
