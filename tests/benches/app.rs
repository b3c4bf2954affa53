//! Figures for the app, each against a baseline measured in the same run:
//! - the wasm and JS it ships, gzipped, against their raw size;
//! - navigation to the first chart drawn (line pixels on the latency canvas), against
//!   navigation to DOMContentLoaded of the same load;
//! - one chart redraw at 24h against one at the live 15 minutes;
//! - one draw of a full day of 10 s points (8,640 per line) against one of the 360 points the
//!   24h view draws (`window.cutoverDrawBench`, on a detached canvas). Only an app built with
//!   its `draw-bench` feature has it, so the bench builds one with trunk into its own dist
//!   (`draw-bench-dist` in the target dir) and serves that from a loopback file server;
//! - wasm linear memory and JS heap after `CUTOVER_BENCH_MINUTES` (default 30) of 1/s ticks,
//!   against the same after the first minute.
//!
//! Run: `./x test` once (builds the app and the binary, installs trunk and wasm-opt), then
//! `CUTOVER_BIN=target/debug/cutover cargo bench -p cutover-e2e --bench app`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use cutover_e2e::{Browser, Demo, FIRST_CHART, FIRST_CHART_WATCH};

fn gzipped(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory").len()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

const MEMORY: &str = r#"
return [window.cutoverMemory ? window.cutoverMemory.buffer.byteLength : -1,
        performance.memory ? performance.memory.usedJSHeapSize : -1];
"#;

async fn draw_ms(browser: &Browser) -> anyhow::Result<f64> {
    let v = browser
        .client
        .execute(
            r#"const c = document.querySelector("[data-testid='chart-latency_ms']");
               return c ? c.getAttribute('data-draw-ms') : null;"#,
            vec![],
        )
        .await?;
    Ok(v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN))
}

/// Draw times of the latency chart, one per redraw, over `period`.
async fn draw_samples(browser: &Browser, period: Duration) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + period;
    let mut last = String::new();
    while Instant::now() < deadline {
        let v = draw_ms(browser).await?;
        let key = format!("{v}");
        if v.is_finite() && key != last {
            out.push(v);
            last = key;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(out)
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the app with its `draw-bench` feature into its own dist (the production `dist/`
/// stays as it is), as `./x` builds the app: trunk, offline, wasm-opt from `.tools`.
fn build_draw_bench_app() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dist = std::path::absolute(target.join("draw-bench-dist"))?;
    let tools = root().join(".tools/npm/node_modules/.bin");
    let path = std::env::join_paths(std::iter::once(tools).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let status = Command::new("trunk")
        .args([
            "build",
            "--release",
            "--offline",
            "--features",
            "draw-bench",
            "--dist",
        ])
        .arg(&dist)
        .current_dir(root())
        .env("PATH", path)
        .status()
        .context("cannot run trunk (./x test installs it)")?;
    if !status.success() {
        bail!("trunk build --features draw-bench failed: {status}");
    }
    Ok(dist)
}

/// Serves the files under `dir` on a free loopback port; returns its URL. Enough for a
/// browser to load the app (its API calls get 404, which the drawing figure does not need).
fn serve_dir(dir: PathBuf) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || answer(stream, &dir));
        }
    });
    Ok(url)
}

/// Answers one HTTP/1.1 GET with the file it names (`/` is `index.html`) and closes.
fn answer(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let name = path.split('?').next().unwrap_or("").trim_start_matches('/');
    let name = if name.is_empty() { "index.html" } else { name };
    let safe = name.split('/').all(|part| !part.is_empty() && part != "..");
    let file = safe.then(|| std::fs::read(dir.join(name)).ok()).flatten();
    let mime = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    let (status, body) = match file {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", Vec::new()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// The same drawing code over a day of 10 s points, against the 24h view's 360 steps,
/// alternated so both see the same machine: in a browser of its own, on the app built with
/// `draw-bench`.
async fn draw_figure(url: &str) -> anyhow::Result<()> {
    let browser = Browser::start().await?;
    browser.client.goto(url).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = browser
            .client
            .execute(
                "return typeof window.cutoverDrawBench === 'function';",
                vec![],
            )
            .await?;
        if ready.as_bool() == Some(true) {
            break;
        }
        if Instant::now() > deadline {
            bail!("window.cutoverDrawBench did not appear at {url}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut steps, mut full) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        for (points, into) in [(360, &mut steps), (8640, &mut full)] {
            let took = browser
                .client
                .execute(
                    "return window.cutoverDrawBench(arguments[0]);",
                    vec![serde_json::json!(points)],
                )
                .await?;
            into.push(took.as_f64().unwrap_or(f64::NAN));
        }
    }
    let (steps_ms, full_ms) = (median(steps), median(full));
    println!(
        "one latency chart draw of 24h at 10 s (8,640 points x 3 lines): {full_ms:.2} ms (median of 15) = {:.2}x the 24h view's 360 points {steps_ms:.2} ms",
        full_ms / steps_ms
    );
    browser.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let minutes: u64 = std::env::var("CUTOVER_BENCH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);

    // Shipped bytes.
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist");
    let (mut raw, mut gz) = (0usize, 0usize);
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm" || e == "js") {
            let bytes = std::fs::read(&path)?;
            let (r, g) = (bytes.len(), gzipped(&bytes));
            println!(
                "{}: {} KiB raw, {} KiB gzipped",
                path.file_name().unwrap_or_default().to_string_lossy(),
                r / 1024,
                g / 1024
            );
            raw += r;
            gz += g;
        }
    }
    println!(
        "wasm + js: {} KiB gzipped = {:.3}x of {} KiB raw",
        gz / 1024,
        gz as f64 / raw as f64,
        raw / 1024
    );

    // The app with the drawing hook, built before anything is measured.
    let draw_app = serve_dir(build_draw_bench_app()?)?;

    let demo = Demo::start()?;
    let browser = Browser::start_with(&["--enable-precise-memory-info"]).await?;
    browser.before_every_page(FIRST_CHART_WATCH).await?;
    let page = format!("{}/r/spiralogic", demo.url);
    browser.sign_in(&page, demo.token("viewer")).await?;
    browser
        .wait_text("rollout-title", Duration::from_secs(15), |t| !t.is_empty())
        .await?;
    // Let the demo put a few points on the chart, so a first draw can show a line.
    tokio::time::sleep(Duration::from_secs(15)).await;

    let (mut chart, mut dcl) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        browser.client.goto(&page).await?;
        let found = browser.client.execute_async(FIRST_CHART, vec![]).await?;
        chart.push(found[0].as_f64().unwrap_or(f64::NAN));
        dcl.push(found[1].as_f64().unwrap_or(f64::NAN));
    }
    let (chart, dcl) = (median(chart), median(dcl));
    println!(
        "navigation to first chart drawn: {chart:.0} ms (median of 7) = {:.2}x navigation to DOMContentLoaded ({dcl:.0} ms)",
        chart / dcl
    );

    let live = draw_samples(&browser, Duration::from_secs(10)).await?;
    browser.click("range-24h").await?;
    browser
        .wait_text("range-note", Duration::from_secs(10), |t| t.contains("24h"))
        .await?;
    let day = draw_samples(&browser, Duration::from_secs(25)).await?;
    let (live_ms, day_ms) = (median(live.clone()), median(day.clone()));
    println!(
        "latency chart redraw: 24h {day_ms:.2} ms (median of {}) = {:.2}x live 15m {live_ms:.2} ms (median of {})",
        day.len(),
        day_ms / live_ms,
        live.len()
    );
    browser.click("range-15m").await?;

    draw_figure(&draw_app).await?;

    // Memory under live ticks: after the first minute, then after `minutes`.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let first = browser.client.execute(MEMORY, vec![]).await?;
    tokio::time::sleep(Duration::from_secs(60 * minutes.saturating_sub(1))).await;
    let later = browser.client.execute(MEMORY, vec![]).await?;
    let mib = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN) / (1024.0 * 1024.0);
    println!(
        "after {minutes} min of 1/s ticks: wasm memory {:.1} MiB = {:.2}x the {:.1} MiB after 1 min; JS heap {:.1} MiB = {:.2}x the {:.1} MiB after 1 min",
        mib(&later[0]),
        mib(&later[0]) / mib(&first[0]),
        mib(&first[0]),
        mib(&later[1]),
        mib(&later[1]) / mib(&first[1]),
        mib(&first[1]),
    );
    browser.close().await;
    Ok(())
}
